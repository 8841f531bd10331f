"""Type stubs of the Rust extension (rust/bindings/: one file per core concept).

Checked against the built module by ``python -m mypy.stubtest wwm_distill._core``
(``make lint``)."""

import os
from typing import Any, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "BatchLoader",
    "Batches",
    "CACHE_DEFAULT_STEP",
    "CACHE_MAX_STEP",
    "CacheReader",
    "CacheWriter",
    "Examples",
    "ExamplesShard",
    "PREP_READER_PARSES_UP_TO",
    "PrepConfig",
    "PrepProgress",
    "TeacherCache",
    "TextPipeline",
    "WwmDistillError",
    "__version__",
    "cache_shard_name",
    "cache_shard_path",
    "merge",
    "prep",
    "read_cache_manifest",
    "read_cache_shard_record",
    "read_examples_manifest",
    "sha256_file",
    "write_cache_manifest",
    "write_cache_shard_record",
]

_Path = str | os.PathLike[str]

class WwmDistillError(Exception):
    """Bad input, arguments or files (the message names the file and line or block)."""

# ---------------------------------------------------------------------------- prep

@final
class PrepConfig:
    """Everything `distill-prep` takes; keyword defaults are the Rust core's
    (`PrepConfig.defaults()`)."""

    def __new__(
        cls,
        inputs: list[str],
        out: _Path,
        vocab: _Path,
        *,
        do_lower_case: bool | None = None,
        segmenter: str = "jieba",
        hmm: bool = True,
        user_dict: _Path | None = None,
        doc_sep: str = "line",
        text_fields: list[str] = ...,
        max_seq_length: int = 512,
        doc_stride: int = 256,
        dupe_factor: int = 5,
        max_predictions_per_seq: int = 20,
        masked_lm_prob: float = 0.15,
        short_seq_prob: float = 0.0,
        min_chars: int = 20,
        max_doc_chars: int = 1000000,
        seed: int = 12345,
        shard_size: int = 65536,
        num_shards: int = 1,
        shard_index: int = 0,
        strict: bool = False,
        workers: int = 0,
        chunk_bytes: int = 262144,
        overwrite: bool = False,
    ) -> PrepConfig: ...
    @staticmethod
    def defaults() -> dict[str, Any]:
        """The default of every keyword option (what the CLI offers)."""
    def to_dict(self) -> dict[str, Any]:
        """Every option, as keyword arguments of the constructor."""

@final
class PrepProgress:
    """Live counters of a running `prep`, safe to poll from another thread."""

    def __new__(cls) -> PrepProgress: ...
    @property
    def input_bytes_total(self) -> int: ...
    @property
    def input_bytes_read(self) -> int: ...
    @property
    def documents(self) -> int: ...
    @property
    def examples(self) -> int: ...
    @property
    def chars(self) -> int: ...
    def cancel(self) -> None:
        """Ask the running job to stop; `prep` then raises KeyboardInterrupt."""

PREP_READER_PARSES_UP_TO: int
"""Up to this many workers `prep`'s reader parses the inputs; with more, the workers parse
pieces of lines the reader cut (inputs with a record per line)."""

def prep(config: PrepConfig, progress: PrepProgress) -> dict[str, Any]:
    """Run distill-prep (GIL released); returns the manifest, also written to
    `config.out/manifest.json`."""

def merge(out: _Path, dirs: list[_Path], overwrite: bool = False) -> dict[str, Any]:
    """Combine several `--num-shards/--shard-index` outputs; returns the merged manifest."""

# ---------------------------------------------------------------------------- text

@final
class TextPipeline:
    """The tokenizer and segmenter a prep run uses, for inspection and tests."""

    def __new__(
        cls,
        vocab: _Path,
        segmenter: str = "jieba",
        hmm: bool = True,
        user_dict: _Path | None = None,
        do_lower_case: bool | None = None,
    ) -> TextPipeline: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def vocab_sha256(self) -> str: ...
    @property
    def do_lower_case(self) -> bool: ...
    def encode(self, text: str) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
        """Token ids and byte offsets ([n, 2]) of `text`, without special tokens."""
    def cut(self, text: str) -> list[str]:
        """The segmenter's words (empty for segmenter="none")."""
    def tokens_and_marks(self, text: str) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
        """Token ids and whole-word continuation marks, as prep computes them."""
    def token(self, id: int) -> str: ...
    def replacement_ids(self) -> npt.NDArray[np.uint32]: ...

# ---------------------------------------------------------------------------- examples

_Ids = npt.NDArray[np.uint16] | npt.NDArray[np.uint32]

@final
class ExamplesShard:
    """One `examples-NNNNN.{bin,idx}` pair, memory-mapped; every array is a read-only view
    whose base is this object (which keeps the map alive)."""

    @property
    def name(self) -> str: ...
    @property
    def info(self) -> dict[str, Any]:
        """The shard's entry in the manifest."""
    @property
    def n(self) -> int: ...
    def __len__(self) -> int: ...
    @property
    def token_bytes(self) -> int: ...
    @property
    def version(self) -> int:
        """The shard's format version (1 or 2; see docs/FORMATS.md)."""
    @property
    def tokens(self) -> _Ids:
        """The `.bin`'s token section: the documents' unmasked tokens (version 2) or every
        example's masked input_ids (version 1)."""
    @property
    def masked_ids(self) -> _Ids:
        """One id per masked position: the input id there (version 2) or the label (1)."""
    @property
    def positions(self) -> npt.NDArray[np.uint16]: ...
    @property
    def token_index(self) -> npt.NDArray[np.uint64]:
        """`token_starts` (version 2, one per example) or `token_offsets` (version 1, one more)."""
    @property
    def lengths(self) -> npt.NDArray[np.uint32]:
        """Length of every example's input_ids, with [CLS] and [SEP] (a new array)."""
    @property
    def mask_offsets(self) -> npt.NDArray[np.uint64]: ...
    @property
    def line(self) -> npt.NDArray[np.uint64]: ...
    @property
    def file(self) -> npt.NDArray[np.uint32]: ...
    @property
    def piece(self) -> npt.NDArray[np.uint32]: ...
    @property
    def window(self) -> npt.NDArray[np.uint32]: ...
    @property
    def dupe(self) -> npt.NDArray[np.uint32]: ...
    def __getitem__(self, i: int, /) -> dict[str, Any]:
        """Example `i`: input_ids and masked_labels (new arrays in the token width),
        masked_positions (a view) and provenance."""

@final
class Examples:
    """The examples written by distill-prep: `len()`, `[i]` → dict of numpy arrays, `shards`
    for the raw zero-copy arrays, `verify()` for the checksums."""

    def __new__(cls, path: _Path, verify: bool = False) -> Examples: ...
    def __len__(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def manifest(self) -> dict[str, Any]: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def starts(self) -> list[int]:
        """First global index of each shard, and the total at the end."""
    @property
    def shards(self) -> list[ExamplesShard]: ...
    def locate(self, i: int) -> tuple[int, int]:
        """Global example index → (shard, index in shard)."""
    def __getitem__(self, i: int, /) -> dict[str, Any]: ...
    def verify(self) -> None:
        """Checks every shard file against the sha256 in the manifest."""

def read_examples_manifest(dir: _Path) -> dict[str, Any]:
    """`dir/manifest.json` of an examples directory, checked."""

# ---------------------------------------------------------------------------- teacher caches

CACHE_DEFAULT_STEP: float
"""The default log-prob quantisation step of a teacher cache, in nats."""
CACHE_MAX_STEP: float
"""The coarsest step a cache may use, in nats."""

@final
class CacheWriter:
    """Writes one teacher-cache shard (`teacher-NNNNN.tkc`), atomically on `finish`."""

    def __new__(
        cls,
        path: _Path,
        mode: str,
        k_max: int,
        id_bytes: int = 2,
        step: float = ...,
        sample_n: int = 0,
        block_examples: int = 256,
        level: int | None = None,
        format_version: int = ...,
    ) -> CacheWriter:
        """`format_version` 1 or 2 writes an old layout (tests and comparisons only);
        `level` (zstd) defaults to the format's: 6 for format 2, 3 for formats 1 and 3."""
    def push(
        self,
        positions_per_example: npt.NDArray[np.uint16],
        k: npt.NDArray[np.uint16],
        ids: npt.NDArray[np.int64],
        tail: npt.NDArray[np.float32],
        logp: npt.NDArray[np.float32] | None = None,
        counts: npt.NDArray[np.uint16] | None = None,
    ) -> None:
        """Append consecutive examples' outputs (GIL released while encoding)."""
    def finish(self) -> dict[str, int | str]:
        """Index + footer + rename; returns examples, positions, entries, bytes, sha256."""

@final
class CacheReader:
    """A memory-mapped teacher-cache shard; decodes only the blocks a request needs."""

    def __new__(cls, path: _Path, lru_blocks: int = 16) -> CacheReader: ...
    @property
    def n_examples(self) -> int: ...
    @property
    def n_positions(self) -> int: ...
    @property
    def n_blocks(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def k_max(self) -> int: ...
    @property
    def step(self) -> float: ...
    @property
    def sample_n(self) -> int: ...
    def positions_of(self, examples: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint32]: ...
    def gather(
        self, examples: npt.NDArray[np.uint64]
    ) -> tuple[
        npt.NDArray[np.int64],
        npt.NDArray[np.float32],
        npt.NDArray[np.float32],
        npt.NDArray[np.int32],
    ]:
        """ids [N, k], log-probs [N, k] (-inf padded), tail [N], entry counts [N]."""

@final
class TeacherCache:
    """A teacher-cache directory by global example index; with `examples` (a directory),
    refuses examples other than those the cache was made from."""

    def __new__(cls, dir: _Path, examples: _Path | None = None) -> TeacherCache: ...
    def __len__(self) -> int: ...
    @property
    def manifest(self) -> dict[str, Any]: ...
    def check_examples(self, examples: _Path) -> None: ...
    def gather(self, indices: Any) -> dict[str, np.ndarray]:
        """ids / logp [N, k] padded to the largest k of the request (0 / -inf), tail [N],
        counts [N]."""

def read_cache_manifest(dir: _Path) -> dict[str, Any]:
    """`dir/manifest.json` of a teacher cache, checked."""

def write_cache_manifest(dir: _Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Stamps the format and version (unless `manifest` names them), checks it and writes
    `dir/manifest.json` atomically, as `json.dumps(manifest, indent=2)`; returns the
    manifest as written."""

def cache_shard_name(k: int) -> str:
    """`teacher-NNNNN`: the cache shard of example shard `k`."""

def cache_shard_path(dir: _Path, k: int) -> str:
    """`dir/teacher-NNNNN.tkc`: the cache shard of example shard `k`."""

def write_cache_shard_record(dir: _Path, k: int, record: dict[str, Any]) -> None:
    """Writes the completion record of cache shard `k` (`teacher-NNNNN.json`) atomically."""

def read_cache_shard_record(dir: _Path, k: int) -> dict[str, Any] | None:
    """The completion record of cache shard `k`, or None while it is unfinished."""

# ---------------------------------------------------------------------------- batches

@final
class Batches:
    """Examples plus (optionally) their teacher cache, addressed by global example index."""

    def __new__(cls, examples: _Path, cache: _Path | None = None) -> Batches: ...
    def __len__(self) -> int: ...
    def assemble(
        self, indices: npt.NDArray[np.uint64], multiple_of: int = 8
    ) -> dict[str, np.ndarray]:
        """One padded batch (int64 ids/masks/positions/labels; teacher_* with a cache)."""
    def loader(
        self,
        plan: list[npt.NDArray[np.uint64]],
        multiple_of: int = 8,
        prefetch: int = 4,
        threads: int = 2,
    ) -> BatchLoader:
        """Batches of a fixed plan, assembled ahead in background threads, in plan order."""

@final
class BatchLoader:
    """Iterator over a plan's batches (from `Batches.loader`)."""

    def __iter__(self) -> BatchLoader: ...
    def __next__(self) -> dict[str, np.ndarray]: ...

# ---------------------------------------------------------------------------- io

def sha256_file(path: _Path) -> str:
    """Hex sha256 of the file at `path` (GIL released while it reads)."""
