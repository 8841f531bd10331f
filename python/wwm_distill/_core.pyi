"""Type stubs of the Rust extension (rust/bindings.rs)."""

import numpy as np
import numpy.typing as npt

__version__: str

class WwmDistillError(Exception):
    """Bad input, arguments or files (the message names the file and line or block)."""

class PrepProgress:
    """Live counters of a running `prep`, safe to poll from another thread."""

    def __init__(self) -> None: ...
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

def prep(config_json: str, progress: PrepProgress) -> str:
    """Run distill-prep with the options in `config_json`; returns the manifest as JSON.
    Releases the GIL while it runs."""

def merge(out: str, dirs: list[str], overwrite: bool = False) -> str:
    """Combine several `--num-shards/--shard-index` outputs; returns the merged manifest."""

class TextPipeline:
    """The tokenizer and segmenter a prep run uses, for inspection and tests."""

    def __init__(
        self,
        vocab: str,
        segmenter: str = "jieba",
        hmm: bool = True,
        user_dict: str | None = None,
        do_lower_case: bool | None = None,
    ) -> None: ...
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

def bench_components(vocab: str, texts: list[str], hmm: bool = True) -> dict[str, float]:
    """Single-threaded seconds: jieba-rs cut, our WordPiece encode, the tokenizers pipeline."""

class CacheWriter:
    """Writes one teacher-cache shard (`teacher-NNNNN.tkc`), atomically on `finish`."""

    def __init__(
        self,
        path: str,
        mode: str,
        k_max: int,
        id_bytes: int = 2,
        step: float = 0.019,
        sample_n: int = 0,
        block_examples: int = 256,
        level: int | None = None,
        format_version: int = 2,
    ) -> None:
        """`format_version` 1 writes the old layout (tests and comparisons only); `level`
        (zstd) defaults to the format's: 6 for format 2, 3 for format 1."""
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

class CacheReader:
    """A memory-mapped teacher-cache shard; decodes only the blocks a request needs."""

    def __init__(self, path: str, lru_blocks: int = 16) -> None: ...
    n_examples: int
    n_positions: int
    n_blocks: int
    version: int
    mode: str
    k_max: int
    step: float
    sample_n: int
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
