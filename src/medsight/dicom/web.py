"""Prediction on a study held by a PACS over DICOMweb: QIDO-RS to find its series, WADO-RS to fetch them,
STOW-RS to send the DICOM results back (dicomweb-client).

The study is fetched into a temporary folder that is removed afterwards, predicted like a study folder, and
its results are sent in one STOW-RS request. A STOW-RS answer does not prove what was stored: Orthanc, for
one, lists an instance that its own rules filtered out among the stored ones. So every result is looked up
again with QIDO-RS; if any is missing or refused, those that were stored are deleted again (DICOMweb DELETE
where the server has it, else Orthanc's REST API, DELETE /instances/{id}, beside its DICOMweb root), so a
refused store leaves nothing half-written; what cannot be deleted is named in the error.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from medsight.errors import MedsightError

SERIES_UID, MODALITY = "0020000E", "00080060"


def _client(url: str):
    from dicomweb_client.api import DICOMwebClient

    if not url.startswith(("http://", "https://")):
        raise MedsightError(url, "is not a DICOMweb URL (expected http:// or https://)")
    client = DICOMwebClient(url, timeout=60)
    client.set_http_retry_params(retry=False)  # a wrong URL answers at once instead of after minutes of retries
    return client


def _failure(url: str, action: str, exc: Exception) -> MedsightError:
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return MedsightError(url, f"{action} was refused (HTTP {exc.response.status_code} {exc.response.reason})")
    return MedsightError(url, f"{action} failed: the DICOMweb server cannot be reached ({type(exc).__name__})")


def find_series(client: Any, url: str, study: str) -> list[dict[str, Any]]:
    """QIDO-RS: the study's series (UID and modality); one line if the server or the study is not there."""
    try:
        found = client.search_for_series(study_instance_uid=study)
    except Exception as exc:  # requests' connection, timeout and HTTP errors
        raise _failure(url, f"searching study {study}", exc) from None
    series = [{"uid": s[SERIES_UID]["Value"][0], "modality": (s.get(MODALITY, {}).get("Value") or ["?"])[0]}
              for s in found if s.get(SERIES_UID, {}).get("Value")]
    if not series:
        raise MedsightError(url, f"has no study {study}")
    return series


def fetch_study(client: Any, url: str, study: str, series: str | None, folder: Path) -> Path:
    """WADO-RS: the image series of the study (or only the given one) into folder/<series>/."""
    from medsight.io.dicom_series import NON_IMAGE_MODALITIES

    listed = find_series(client, url, study)
    if series is not None and series not in {s["uid"] for s in listed}:
        raise MedsightError(url, f"study {study} has no series {series}")
    wanted = [s["uid"] for s in listed if (s["uid"] == series if series else s["modality"] not in NON_IMAGE_MODALITIES)]
    for uid in wanted:
        try:
            instances = client.retrieve_series(study, uid)
        except Exception as exc:
            raise _failure(url, f"fetching series {uid}", exc) from None
        target = folder / uid
        target.mkdir(parents=True, exist_ok=True)
        for number, dataset in enumerate(instances):
            dataset.save_as(target / f"{number:05d}.dcm", enforce_file_format=True)
    return folder


def store_results(client: Any, url: str, paths: Sequence[Path]) -> list[str]:
    """STOW-RS: send the results in one request and check each is stored; if not, withdraw them, fail in one line."""
    import pydicom

    datasets = [pydicom.dcmread(p) for p in paths]
    try:
        response = client.store_instances(datasets)
    except Exception as exc:
        raise MedsightError(url, f"{_failure(url, 'storing the results', exc).problem}; {_withdraw(client, url, datasets)}") \
            from None
    failed = (response.get("FailedSOPSequence") or []) if response is not None else []
    missing = [d for d in datasets if not _is_stored(client, d)]
    if failed or missing:
        refused = max(len(failed), len(missing))
        reason = f" (failure reason {failed[0].get('FailureReason', '?')})" if failed else ""
        raise MedsightError(url, f"stored {len(datasets) - refused} of {len(datasets)} result(s){reason}; "
                                 f"{_withdraw(client, url, datasets)}")
    return [str(d.SOPInstanceUID) for d in datasets]


def _is_stored(client: Any, dataset: Any) -> bool:
    """QIDO-RS: does the server hold this instance now?"""
    try:
        found = client.search_for_instances(study_instance_uid=str(dataset.StudyInstanceUID),
                                            series_instance_uid=str(dataset.SeriesInstanceUID),
                                            search_filters={"SOPInstanceUID": str(dataset.SOPInstanceUID)})
    except Exception:  # the series is not there at all
        return False
    return any((item.get("00080018", {}).get("Value") or [None])[0] == str(dataset.SOPInstanceUID) for item in found)


def _withdraw(client: Any, url: str, datasets: Sequence[Any]) -> str:
    """Delete the instances of datasets the server holds; says what was done, for the error message."""
    stored = [d for d in datasets if _is_stored(client, d)]
    kept = []
    for dataset in stored:
        try:
            client.delete_instance(str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID),
                                   str(dataset.SOPInstanceUID))
        except Exception:  # many servers offer no DICOMweb DELETE (Orthanc answers 405)
            _delete_through_orthanc(url, str(dataset.SOPInstanceUID))
        if _is_stored(client, dataset):
            kept.append(str(dataset.SOPInstanceUID))
    if kept:
        return (f"{len(kept)} stored result(s) could not be deleted and remain on the server "
                f"(SOPInstanceUID {', '.join(kept)})")
    return f"the {len(stored)} stored were deleted again" if stored else "none was left stored"


def _delete_through_orthanc(url: str, sop_instance_uid: str) -> None:
    """Orthanc's REST API beside its DICOMweb root: find the instance's id by its UID and DELETE it."""
    import requests

    root = url.rstrip("/").rsplit("/", 1)[0]
    try:
        found = requests.post(f"{root}/tools/lookup", data=sop_instance_uid, timeout=30)
        for item in found.json() if found.ok else []:
            if item.get("Type") == "Instance":
                requests.delete(f"{root}/instances/{item['ID']}", timeout=30)
    except (requests.RequestException, ValueError, TypeError, KeyError):
        return  # not an Orthanc, or not reachable: the caller reports what is left


def predict_dicomweb(paths: Sequence[str], url: str, study: str | None, out: str | Path, series: str | None = None,
                     fmt: str = "nifti", store: bool = False, codes: str | Path | None = None,
                     engine: str = "torch") -> str:
    """Fetch a study over DICOMweb, predict it with the run(s) in paths, and with store send the results back."""
    from medsight.dicom.outputs import predict_with_results
    from medsight.inference.predictor import Predictor

    if not study:
        raise MedsightError(None, "predict --dicomweb needs --study UID")
    if store and fmt == "nifti":
        raise MedsightError(None, "predict --store sends DICOM results: give --format dicom-seg or dicom-sr")
    runs = [p for p in paths if (Path(p) / "config.json").is_file()]
    if not runs or len(runs) != len(paths):
        raise MedsightError(paths[0] if paths else None, "with --dicomweb give only run folders (the study comes from the server)")
    client = _client(url)
    predictor = Predictor([Path(r) for r in runs], engine=engine)
    with tempfile.TemporaryDirectory(prefix="medsight-dicomweb-") as tmp:
        folder = fetch_study(client, url, study, series, Path(tmp) / "study")
        records = predict_with_results(predictor, [folder], Path(out), fmt=fmt, series=series, codes_file=codes)
    written = [Path(r[k]) for r in records for k in ("dicom_seg", "dicom_sr") if r.get(k)]
    if store:
        uids = store_results(client, url, written)
        return f"predicted study {study}; stored {len(uids)} result(s) on {url}"
    return f"predicted study {study} into {out}"
