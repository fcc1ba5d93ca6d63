"""Coded concepts for class names: a user's mapping file first, then the data set's own codes (dataset.json
"label_codes", kept in the run's plan), then SNOMED CT for names known here.

A mapping (file or "label_codes") is JSON: {"class name": {"category": [scheme, value, meaning],
"type": [scheme, value, meaning]}}.
The SNOMED codes come from pydicom's copy of the DICOM standard's code tables, looked up by keyword, so
a code cannot be mistyped here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medsight.errors import MedsightError

# a word of the class name -> (category keyword, property keyword), keywords of pydicom's SCT table
KNOWN = {
    "liver": ("AnatomicalStructure", "Liver"), "spleen": ("AnatomicalStructure", "Spleen"),
    "kidney": ("AnatomicalStructure", "Kidney"), "lung": ("AnatomicalStructure", "Lung"),
    "heart": ("AnatomicalStructure", "Heart"), "pancreas": ("AnatomicalStructure", "Pancreas"),
    "brain": ("AnatomicalStructure", "Brain"), "prostate": ("AnatomicalStructure", "Prostate"),
    "hippocampus": ("AnatomicalStructure", "Hippocampus"), "aorta": ("AnatomicalStructure", "Aorta"),
    "stomach": ("AnatomicalStructure", "Stomach"), "gallbladder": ("AnatomicalStructure", "Gallbladder"),
    "esophagus": ("AnatomicalStructure", "Esophagus"), "colon": ("AnatomicalStructure", "Colon"),
    "thyroid": ("AnatomicalStructure", "Thyroid"), "bone": ("AnatomicalStructure", "Bone"),
    "vessel": ("AnatomicalStructure", "BloodVessel"), "vessels": ("AnatomicalStructure", "BloodVessel"),
    "tumor": ("MorphologicallyAbnormalStructure", "Neoplasm"),
    "tumour": ("MorphologicallyAbnormalStructure", "Neoplasm"),
    "neoplasm": ("MorphologicallyAbnormalStructure", "Neoplasm"),
    "lesion": ("MorphologicallyAbnormalStructure", "Lesion"),
    "nodule": ("MorphologicallyAbnormalStructure", "Nodule"),
    "mass": ("MorphologicallyAbnormalStructure", "Mass"),
}


def load_mapping(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """A user's mapping file (see the module docstring), checked entry by entry."""
    from medsight.io.label_codes import check_mapping
    from medsight.jsonio import load_json

    return {} if path is None else check_mapping(load_json(Path(path)), path)


def class_codes(name: str, mapping: dict[str, dict[str, Any]], where: Any = None):
    """(category, property type) CodedConcepts for a class name: the user's mapping first, then the table."""
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    if name in mapping:
        category, kind = mapping[name]["category"], mapping[name]["type"]
        return (CodedConcept(category[1], category[0], category[2]), CodedConcept(kind[1], kind[0], kind[2]))
    for word in re.split(r"[^a-z]+", name.lower()):
        if word in KNOWN:
            category, kind = KNOWN[word]
            return getattr(codes.SCT, category), getattr(codes.SCT, kind)
    raise MedsightError(where, f"class {name!r} has no known SNOMED code; give a mapping file with --codes FILE "
                               '({"' + name + '": {"category": ["SCT", "91723000", "Anatomical Structure"], '
                               '"type": [scheme, value, meaning]}})')
