"""DICOM results (SEG, TID 1500 SR) written from predictions, and prediction of studies held by a PACS (DICOMweb).

Reading study folders and SEG labels is medsight.io.dicom_series and medsight.io.dicom_seg.
"""
