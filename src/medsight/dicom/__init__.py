"""DICOM beyond single files: study trees grouped into series, results written as SEG and SR, DICOMweb."""
