"""Results written back as DICOM that references its source series: a Segmentation (SEG) per mask and a
TID 1500 measurement report (Comprehensive 3D SR) per input, both made with highdicom.

Every SEG is read back with highdicom and compared voxel by voxel with the mask it was made from; a
difference fails the prediction, as the ONNX export is checked against PyTorch.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError

MANUFACTURER = "medsight"
DICOM_FORMATS = ("dicom-seg", "dicom-sr")
# a private coding scheme (DICOM reserves designators starting with "99" for local codes)
PROBABILITY = ("99MEDSIGHT", "probability", "Probability of finding")


@dataclass(frozen=True)
class Algorithm:
    """What made the result: the model's name, medsight's version and the weights' SHA-256."""

    name: str
    version: str
    weights_sha256: str

    @classmethod
    def of_runs(cls, runs: Sequence[Any]) -> "Algorithm":
        from medsight import __version__

        names = "+".join(r.load_config().model for r in runs)
        digests = [hashlib.sha256(Path(r.weights_path).read_bytes()).hexdigest() for r in runs]
        digest = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
        return cls(f"medsight {names}"[:64], __version__, digest)

    def identification(self):
        import highdicom as hd
        from pydicom.sr.codedict import codes

        return hd.AlgorithmIdentificationSequence(name=self.name, family=codes.cid7162.ArtificialIntelligence,
                                                  version=self.version, parameters={"weights_sha256": self.weights_sha256})


def source_datasets(path: Path, rule) -> tuple[Any, list[Any]]:
    """The series that was predicted from path (chosen by rule, as the reader did) and its headers in volume order."""
    from medsight.io.dicom_series import choose_series, scan_study, slice_geometry

    found = scan_study(path)
    series = choose_series(found, rule, path)
    geometry = slice_geometry(series, path)
    if geometry.multiframe:
        return series, [series.headers[0]]
    return series, [series.headers[i] for i in geometry.order]


def write_segmentation(mask: np.ndarray, sources: Sequence[Any], labels: dict[int, str], mapping: dict[str, Any],
                       algorithm: Algorithm, path: Path, series_number: int = 900):
    """A binary DICOM SEG of mask ((frames, rows, cols) labels), one segment per non-background class; checked."""
    import highdicom as hd

    from medsight.dicom.codes import class_codes
    from medsight.jsonio import atomic_write

    classes = sorted(c for c in labels if c != 0)
    if classes != list(range(1, len(classes) + 1)):
        raise MedsightError(path, f"cannot be written: DICOM segments are numbered 1..n but the labels are {classes}")
    descriptions = []
    for number in classes:
        category, kind = class_codes(labels[number], mapping, path)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=labels[number][:64], segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm.identification()))
    frames = np.ascontiguousarray(mask.astype(np.uint8).reshape(len(sources), *mask.shape[-2:]))
    warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")  # the source's names
    seg = hd.seg.Segmentation(
        source_images=list(sources), pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name, software_versions=algorithm.version,
        device_serial_number=algorithm.weights_sha256[:16], omit_empty_frames=False,
        content_description="segmentation by medsight", content_label="MEDSIGHT")
    atomic_write(path, lambda tmp: seg.save_as(tmp), suffix=".dcm")
    check_segmentation(path, frames, sources, classes)
    return seg


def check_segmentation(path: Path, expected: np.ndarray, sources: Sequence[Any], classes: Sequence[int]) -> None:
    """Read the SEG back with highdicom and compare it with the mask voxel by voxel; fail loudly if they differ."""
    import highdicom as hd

    seg = hd.seg.segread(path)
    uids = [str(s.SOPInstanceUID) for s in sources]
    back = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=list(classes),
                                             combine_segments=True, relabel=False)
    if back.shape != expected.shape or not np.array_equal(back, expected):
        wrong = int((back != expected).sum()) if back.shape == expected.shape else "all"
        path.unlink(missing_ok=True)
        raise MedsightError(path, f"the SEG read back differs from the predicted mask ({wrong} voxels); it was removed")


def _observation_context():
    import highdicom as hd
    from pydicom.sr.codedict import codes

    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name=MANUFACTURER)
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _report(sources: Sequence[Any], groups: list[Any], path: Path, algorithm: Algorithm, title: str,
            series_number: int = 901, evidence: Sequence[Any] = ()) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medsight.jsonio import atomic_write

    report = hd.sr.MeasurementReport(observation_context=_observation_context(),
                                     procedure_reported=codes.LN.CTUnspecifiedBodyRegion if sources[0].Modality == "CT"
                                     else codes.SCT.ImagingProcedure, imaging_measurements=groups,
                                     title=codes.cid7021.ImagingMeasurementReport)
    sr = hd.sr.Comprehensive3DSR(evidence=[*sources, *evidence], content=report[0], series_instance_uid=hd.UID(),
                                 series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
                                 manufacturer=MANUFACTURER, series_description=title[:64])
    sr.SoftwareVersions = algorithm.version
    atomic_write(path, lambda tmp: sr.save_as(tmp), suffix=".dcm")
    return sr


def _tracking(label: str):
    import highdicom as hd

    return hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label[:64])


def _probability(value: float):
    import highdicom as hd

    return hd.sr.Measurement(name=hd.sr.CodedConcept(PROBABILITY[1], PROBABILITY[0], PROBABILITY[2]),
                             value=round(float(value), 6), unit=hd.sr.CodedConcept("1", "UCUM", "no units"))


def write_volume_report(seg: Any, volumes_mm3: dict[str, float], labels: dict[int, str], sources: Sequence[Any],
                        algorithm: Algorithm, path: Path) -> Any:
    """A TID 1500 report with each class's volume (mm3), each measured on its segment of the SEG."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    groups = []
    for number, name in sorted(labels.items()):
        if number == 0:
            continue
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking(f"{name} volume"),
            referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, segment_number=number),
            measurements=[hd.sr.Measurement(name=codes.SCT.Volume, value=round(float(volumes_mm3.get(name, 0.0)), 3),
                                            unit=codes.UCUM.CubicMillimeter, algorithm_id=_algorithm_id(algorithm))]))
    return _report(sources, groups, path, algorithm, "medsight segmentation volumes", evidence=[seg])


def _algorithm_id(algorithm: Algorithm):
    import highdicom as hd

    return hd.sr.AlgorithmIdentification(name=algorithm.name, version=algorithm.version,
                                         parameters=[f"weights_sha256={algorithm.weights_sha256}"])


def write_detection_report(findings: Sequence[dict[str, Any]], sources: Sequence[Any], mapping: dict[str, Any],
                           algorithm: Algorithm, path: Path) -> Any:
    """A TID 1500 report with one finding per box: class, probability and where it is in the source image
    (3D: its centre in patient coordinates, mm; 2D: its rectangle in the image's pixels)."""
    import highdicom as hd

    from medsight.dicom.codes import class_codes

    groups = []
    frame_of_reference = str(sources[0].FrameOfReferenceUID) if "FrameOfReferenceUID" in sources[0] else None
    for index, finding in enumerate(findings, 1):
        _, kind = class_codes(finding["category"], mapping, path)
        label = f"{finding['category']} {index}"
        if "bbox_world" in finding:
            if frame_of_reference is None:
                raise MedsightError(path, "the source series has no FrameOfReferenceUID; 3D findings cannot be placed")
            centre = np.asarray([finding["bbox_world"]["center"]], dtype=float)
            surface = hd.sr.VolumeSurface(graphic_type=hd.sr.GraphicTypeValues3D.POINT, graphic_data=centre,
                                          frame_of_reference_uid=frame_of_reference,
                                          source_images=[hd.sr.SourceImageForSegmentation.from_source_image(s) for s in sources])
            group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(label), referenced_volume_surface=surface, finding_type=kind,
                measurements=[_probability(finding["score"])])
        else:
            x, y, width, height = (float(v) for v in finding["bbox"][:4])
            corners = np.asarray([[x, y], [x + width, y], [x + width, y + height], [x, y + height], [x, y]])
            region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=corners,
                                       source_image=hd.sr.SourceImageForRegion.from_source_image(sources[0]))
            group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(label), referenced_region=region, finding_type=kind,
                measurements=[_probability(finding["score"])])
        groups.append(group)
    return _report(sources, groups, path, algorithm, "medsight detection findings")


def write_classification_report(record: dict[str, Any], sources: Sequence[Any], mapping: dict[str, Any],
                                algorithm: Algorithm, path: Path) -> Any:
    """A TID 1500 report with the decided class and each class's probability, on the whole source series."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    decided = record.get("class") or ""
    evaluations = [hd.sr.QualitativeEvaluation(name=codes.SCT.Finding, value=_class_concept(decided, mapping))] \
        if decided else []
    groups = []
    for name, probability in record["probabilities"].items():
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking(f"p({name})"), finding_type=_class_concept(name, mapping),
            measurements=[_probability(probability)], qualitative_evaluations=evaluations if name == decided else None))
    return _report(sources, groups, path, algorithm, "medsight classification")


def _class_concept(name: str, mapping: dict[str, Any]):
    """A class as a coded value: its SNOMED or mapped code where there is one, else a local code of its name."""
    import highdicom as hd

    from medsight.dicom.codes import class_codes

    try:
        return class_codes(name, mapping)[1]
    except MedsightError:
        return hd.sr.CodedConcept(name[:16] or "none", "99MEDSIGHT", name[:64] or "none")


def write_dicom_results(predictor: Any, records: list[dict[str, Any]], out: Path, fmt: str,
                        series: str | None = None, codes_file: str | Path | None = None) -> list[Path]:
    """The DICOM results of a prediction's records (DICOM inputs only): SEG (+ volumes SR) or an SR per input."""
    from medsight.dicom.codes import load_mapping
    from medsight.io.dicom_series import SeriesRule
    from medsight.io.images import read_image

    task = predictor.task.name
    if fmt == "dicom-seg" and task != "segmentation":
        raise MedsightError(None, f"--format dicom-seg is for segmentation runs; this is a {task} run (use dicom-sr)")
    mapping = {**(predictor.task.plan or {}).get("label_codes", {}), **load_mapping(codes_file)}  # the user's file wins
    algorithm = Algorithm.of_runs(predictor.runs)
    rule = SeriesRule.from_plan(predictor.task.plan, series)
    folder = out / "dicom"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    findings = _findings_by_file(out) if task == "detection" else {}
    for record in records:
        source = Path(record.get("input") or record.get("file"))
        if not (source.is_dir() or _is_dicom(source)):
            raise MedsightError(source, f"is not DICOM: --format {fmt} writes DICOM results for DICOM inputs only")
        _, sources = source_datasets(source, rule)
        name = Path(record.get("output", source.name)).name.split(".")[0] if task == "segmentation" else source.name
        if task == "segmentation":
            labels = {int(k): v for k, v in predictor.task.plan["labels"].items()}
            mask = read_image(record["output"]).array[0]
            seg_path = folder / f"{name}_seg.dcm"
            seg = write_segmentation(mask, sources, labels, mapping, algorithm, seg_path)
            record["dicom_seg"] = str(seg_path)
            written.append(seg_path)
            sr_path = folder / f"{name}_volumes_sr.dcm"
            write_volume_report(seg, record.get("volume_mm3", {}), labels, sources, algorithm, sr_path)
        elif task == "detection":
            sr_path = folder / f"{name}_findings_sr.dcm"
            write_detection_report(findings.get(str(source), []), sources, mapping, algorithm, sr_path)
        else:
            sr_path = folder / f"{name}_classification_sr.dcm"
            write_classification_report(record, sources, mapping, algorithm, sr_path)
        record["dicom_sr"] = str(sr_path)
        written.append(sr_path)
    return written


def _is_dicom(path: Path) -> bool:
    from medsight.io.images import is_dicom_file

    return path.is_file() and is_dicom_file(path)


def _findings_by_file(out: Path) -> dict[str, list[dict[str, Any]]]:
    from medsight.jsonio import load_json

    grouped: dict[str, list[dict[str, Any]]] = {}
    for finding in load_json(out / "results.json"):
        grouped.setdefault(finding["file"], []).append(finding)
    return grouped


def predict_with_results(predictor: Any, inputs: Sequence[Path], out: Path, explain: bool = False,
                         fmt: str = "nifti", series: str | None = None,
                         codes_file: str | Path | None = None, **many: Any) -> list[dict[str, Any]]:
    """The predictor's records for inputs, and with a DICOM fmt the DICOM results beside them (OUT/dicom/).

    many: the predictor's shard and resume (--shard, --continue)."""
    if fmt not in ("nifti", *DICOM_FORMATS):
        raise MedsightError(None, f"unknown output format {fmt!r}; choose nifti, {', '.join(DICOM_FORMATS)}")
    records = predictor.predict_files(list(inputs), Path(out), explain=explain, series=series, **many)
    if fmt != "nifti":
        write_dicom_results(predictor, records, Path(out), fmt, series=series, codes_file=codes_file)
    return records
