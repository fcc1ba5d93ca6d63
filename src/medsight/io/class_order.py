"""Class names that are grades (grade_0..grade_4, DR2, 0..4): ordered by their number, not alphabetically."""

from __future__ import annotations

import re
from typing import Sequence

# "grade_0", "Grade 3", "level-2", "stage1", "DR2" or a bare number: the number orders the class
GRADE_NAME = re.compile(r"^(?:grade|level|stage|class|dr)?[ _\-]?(\d+)$", re.IGNORECASE)
def grade_number(name: str) -> int | None:
    found = GRADE_NAME.match(name.strip())
    return int(found.group(1)) if found else None


def ordinal_class_order(names: Sequence[str]) -> list[str] | None:
    """The class names in grade order when every name is a grade (three or more distinct), else None."""
    numbers = [grade_number(n) for n in names]
    if len(names) < 3 or any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
        return None
    return [name for _, name in sorted(zip(numbers, names))]
