"""A local model registry: versioned models, their metadata and factsheets.

Layout under the registry root::

    <name>/v<version>/model.skops      the fitted pipeline, in skops format
                      metadata.json    id, parameters, metrics, lineage, the model file's SHA-256
                      factsheet.md     the readable model card (utils.factsheet)
                      factsheet.json   the same facts for machines; both regenerated whenever the
                                       version's records in the data mart change

Models are stored with skops, never as bare pickles, and loaded only when every
type in the file is on :data:`TRUSTED_TYPES` and the file's SHA-256 is the one recorded at registration
(versions registered before hashes were recorded have none and are only checked for types). A version is written into a
temporary folder and renamed into place, so a reader never sees half a version and
two writers never get the same version number.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import skops.io as sio
from sqlalchemy.engine import Engine

from utils import config
from utils.data import file_sha256, write_text_atomically
from utils.factsheet import build_factsheet, lifecycle_records, render_factsheet
from utils.times import utc_now

#: Types beyond skops' own defaults that a registered model may contain.
TRUSTED_TYPES: tuple[str, ...] = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)

#: Longest model name (the part of a model id before ``-v<version>``) and longest version number, in characters.
MAX_NAME_LENGTH = 100
MAX_VERSION_DIGITS = 9

_ID_PATTERN = re.compile(r"(?P<name>[a-z0-9][a-z0-9_-]*)-v(?P<version>[1-9][0-9]*)")  # matched whole (fullmatch)
#: A model id or ``<name>-latest``, lengths included, as a JSON Schema (ECMA) pattern: what the API documents.
MODEL_REF_PATTERN = (
    rf"^[a-z0-9][a-z0-9_-]{{0,{MAX_NAME_LENGTH - 1}}}-(?:v[1-9][0-9]{{0,{MAX_VERSION_DIGITS - 1}}}|latest)$"
)
_SHOWN = 60  # characters of a refused id that its error message shows
#: Key of ``metadata.json`` holding the SHA-256 (hex) of ``model.skops``, recorded at registration.
MODEL_SHA256 = "model_sha256"


_log = logging.getLogger(__name__)


class RegistryError(LookupError):
    """A model id that is malformed or not in the registry, or a model that cannot be trusted."""


class ModelNotFound(RegistryError):
    """A well-formed model id that is not in the registry (the service answers 404)."""


@dataclass(frozen=True)
class ModelVersion:
    """Where one registered model version lives."""

    model_id: str
    name: str
    version: int
    path: Path

    @property
    def model_file(self) -> Path:
        return self.path / "model.skops"

    @property
    def metadata_file(self) -> Path:
        return self.path / "metadata.json"

    @property
    def factsheet_file(self) -> Path:
        return self.path / "factsheet.md"

    @property
    def factsheet_json_file(self) -> Path:
        return self.path / "factsheet.json"


def _write_factsheet(folder: Path, document: dict) -> None:
    """Write a factsheet's JSON and Markdown into a version's folder, each file atomically."""
    write_text_atomically(folder / "factsheet.json", json.dumps(document, indent=2, default=str))
    write_text_atomically(folder / "factsheet.md", render_factsheet(document))


def save_skops(obj, path: str | os.PathLike) -> Path:
    """Write a fitted scikit-learn object in skops format, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sio.dump(obj, tmp)
    tmp.replace(path)
    return path


def load_trusted(path: str | os.PathLike, *, model_id: str | None = None):
    """Load a skops file, refusing it if it holds any type not trusted by skops or :data:`TRUSTED_TYPES`.

    Errors name ``model_id`` when it is given, else the file.

    Raises:
        RegistryError: no such file, a file that is not a readable skops file, or one holding untrusted types.
    """
    path = Path(path)
    what = f"model {model_id!r}" if model_id is not None else str(path)
    if not path.is_file():
        raise RegistryError(f"{what}: no such model file")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as error:  # not a zip file, or a zip without skops' schema: nothing to trust
        raise RegistryError(f"{what}: the model file is damaged, not a skops file ({type(error).__name__})") from error
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise RegistryError(f"{what} holds untrusted types: {', '.join(refused)}")
    try:
        return sio.load(path, trusted=untrusted)
    except Exception as error:  # a damaged member of the zip file
        raise RegistryError(f"{what}: the model file is damaged ({type(error).__name__}: {error})") from error


def _shown(model_id: object) -> str:
    text = repr(model_id)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(model_id)} characters)"


def parse_model_id(model_id: str) -> tuple[str, int]:
    """Split ``credit-risk-v3`` into ``("credit-risk", 3)``.

    The name has 1 to :data:`MAX_NAME_LENGTH` characters (lower-case letters, digits, ``_`` and ``-``, starting
    with a letter or digit), the version 1 to :data:`MAX_VERSION_DIGITS` digits; nothing else, not even a line end.

    Raises:
        RegistryError: a malformed or over-long id.
    """
    match = _ID_PATTERN.fullmatch(model_id) if isinstance(model_id, str) else None
    if not match:
        raise RegistryError(f"malformed model id {_shown(model_id)}: expected <name>-v<version>, e.g. credit-risk-v1")
    if len(match["name"]) > MAX_NAME_LENGTH or len(match["version"]) > MAX_VERSION_DIGITS:
        raise RegistryError(
            f"malformed model id {_shown(model_id)}: too long; a name has at most {MAX_NAME_LENGTH} characters "
            f"and a version at most {MAX_VERSION_DIGITS} digits"
        )
    return match["name"], int(match["version"])


class ModelRegistry:
    """Versioned model store rooted at a folder (normally the working directory's, see :func:`registry_for`)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _version(self, name: str, version: int) -> ModelVersion:
        return ModelVersion(f"{name}-v{version}", name, version, self.root / name / f"v{version}")

    def versions(self, name: str) -> list[int]:
        """Version numbers registered under ``name``, ascending."""
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in folder.iterdir() if re.fullmatch(r"v[1-9][0-9]*", p.name))

    def register(self, model, *, name: str, metadata: dict) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` with its metadata and factsheet."""
        parse_model_id(f"{name}-v1")  # validates the name
        (self.root / name).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            model_sha256 = file_sha256(save_skops(model, staging / "model.skops"))
            while True:
                version = self._version(name, (self.versions(name) or [0])[-1] + 1)
                record = {
                    **metadata,
                    "model_id": version.model_id,
                    "name": name,
                    "version": version.version,
                    "created_at": utc_now().isoformat(timespec="seconds"),
                    MODEL_SHA256: model_sha256,
                }
                (staging / "metadata.json").write_text(json.dumps(record, indent=2, default=str))
                _write_factsheet(staging, build_factsheet(record))
                try:
                    os.rename(staging, version.path)  # atomic; fails if another writer took the number
                    return version
                except OSError:
                    if not version.path.exists():
                        raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def get(self, model_id: str) -> ModelVersion:
        """The stored version ``model_id``; ``<name>-latest`` means its newest version.

        Raises:
            RegistryError: a malformed or over-long id (see :func:`parse_model_id`), or one not in the registry.
        """
        if isinstance(model_id, str) and model_id.endswith("-latest"):
            try:
                name, _ = parse_model_id(model_id.removesuffix("-latest") + "-v1")
            except RegistryError:
                raise RegistryError(
                    f"malformed model id {_shown(model_id)}: expected <name>-v<version> or <name>-latest"
                ) from None
            versions = self.versions(name)
            if not versions:
                raise ModelNotFound(f"no model named {name!r} in the registry")
            return self._version(name, versions[-1])
        version = self._version(*parse_model_id(model_id))
        try:
            present = version.metadata_file.is_file()
        except OSError as error:  # e.g. a registry root so deep that the path is too long
            raise RegistryError(f"model {model_id!r} cannot be looked up in {self.root}: {error.strerror}") from None
        if not present:
            raise ModelNotFound(f"model {model_id!r} is not in the registry")  # no path: it may reach an API client
        return version

    def metadata(self, model_id: str) -> dict:
        """The metadata recorded with a version."""
        return json.loads(self.get(model_id).metadata_file.read_text())

    def load(self, model_id: str):
        """Load a model, refusing a file changed since registration or holding a type not on the trusted list.

        The file's SHA-256 is compared with the one in ``metadata.json`` before skops reads anything; a version
        whose metadata records no hash (registered before hashes were recorded) is only checked for types.

        Raises:
            RegistryError: a malformed or unknown id, a model file changed since registration, a damaged model
                file or one holding untrusted types.
        """
        version = self.get(model_id)
        self._check_hash(version)
        return load_trusted(version.model_file, model_id=version.model_id)

    def _check_hash(self, version: ModelVersion) -> None:
        """Refuse a model file whose SHA-256 differs from the one recorded at registration (if one was)."""
        try:
            recorded = json.loads(version.metadata_file.read_text()).get(MODEL_SHA256)
        except (OSError, ValueError, AttributeError) as error:
            raise RegistryError(
                f"model {version.model_id!r}: its metadata cannot be read ({type(error).__name__})"
            ) from None
        if recorded is None:
            return
        try:
            actual = file_sha256(version.model_file)
        except OSError:
            raise RegistryError(f"model {version.model_id!r}: no such model file") from None
        if actual != recorded:
            raise RegistryError(
                f"model {version.model_id!r}: the model file is damaged or was changed after registration "
                "(its SHA-256 differs from the one recorded)"
            )

    def factsheet(self, model_id: str, *, engine: Engine) -> dict:
        """The factsheet of ``model_id`` as it stands now: its metadata and the data mart's records of its life
        (:func:`utils.factsheet.build_factsheet`); Markdown with :func:`utils.factsheet.render_factsheet`.

        Raises:
            RegistryError: a malformed id or one not in the registry.
        """
        version = self.get(model_id)
        return build_factsheet(self.metadata(version.model_id), lifecycle_records(engine, version.model_id))

    def write_factsheet(self, model_id: str, *, engine: Engine) -> ModelVersion | None:
        """Regenerate ``factsheet.json`` and ``factsheet.md`` of ``model_id`` from its metadata and the data mart.

        Called after every change of the records a factsheet shows (a deployment, a removal, an evaluation, a
        decision, stored monitor measurements), once that change has committed. Returns None, writing nothing, for
        a version this registry does not hold (there is no factsheet to follow it) or when the files cannot be
        written (logged as a warning: the change itself stands, and ``GET /ml/v4/models/{id}/factsheet`` renders
        the factsheet fresh).
        """
        try:
            version = self.get(model_id)
        except RegistryError:
            return None
        document = self.factsheet(version.model_id, engine=engine)
        try:
            _write_factsheet(version.path, document)
        except OSError as error:
            _log.warning("the factsheet of %s was not written: %s", version.model_id, error)
            return None
        return version

    def list(self) -> pd.DataFrame:
        """One row per registered version: id, model type, ROC AUC and creation time."""
        rows = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for number in self.versions(folder.name):
                record = self.metadata(f"{folder.name}-v{number}")
                rows.append(
                    {
                        "model_id": record["model_id"],
                        "model_type": record.get("model_type"),
                        "auc_roc": record.get("metrics", {}).get("auc_roc"),
                        "created_at": record["created_at"],
                    }
                )
        return pd.DataFrame(rows, columns=["model_id", "model_type", "auc_roc", "created_at"])


def registry_for(work: str | os.PathLike | None = None) -> ModelRegistry:
    """The model registry of the working directory (:attr:`utils.config.WorkLayout.registry`)."""
    return ModelRegistry(config.layout(work).registry)


def training_data_path(metadata: dict, work: str | os.PathLike | None = None) -> Path:
    """The file a version was trained on: its recorded ``training_data.path`` (a retrained version's, relative to
    the working directory), else the working directory's training split."""
    layout = config.layout(work)
    recorded = metadata.get("training_data", {}).get("path")
    return layout.resolve(recorded) if recorded else layout.train


def reference_data_path(metadata: dict, work: str | os.PathLike | None = None) -> Path:
    """The data a version's drift monitor compares traffic with: its recorded ``reference_data.path`` (a retrained
    version's: the labelled production records of the windows it was retrained for, docs/retraining.md), else the
    file it was trained on."""
    recorded = metadata.get("reference_data", {}).get("path")
    return config.layout(work).resolve(recorded) if recorded else training_data_path(metadata, work)
