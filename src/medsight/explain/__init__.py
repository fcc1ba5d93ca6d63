"""Why a model decided: Grad-CAM / Grad-CAM++ heat maps and the pictures that show them."""
