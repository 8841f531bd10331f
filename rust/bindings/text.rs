//! `TextPipeline`: the tokenizer and segmenter of a prep run, for inspection and tests.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;

use super::{guarded, to_py, WwmDistillError};
use crate::error::Error;
use crate::segment::{continuation_marks, Segmenter};
use crate::tokenize::WordPieceTokenizer;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTextPipeline>()
}

/// The tokenizer and segmenter of a prep run, for inspection and tests.
#[pyclass(name = "TextPipeline", frozen)]
struct PyTextPipeline {
    tok: WordPieceTokenizer,
    seg: Segmenter,
}

#[pymethods]
impl PyTextPipeline {
    #[new]
    #[pyo3(signature = (vocab, segmenter="jieba", hmm=true, user_dict=None, do_lower_case=None))]
    fn new(
        py: Python<'_>,
        vocab: PathBuf,
        segmenter: &str,
        hmm: bool,
        user_dict: Option<PathBuf>,
        do_lower_case: Option<bool>,
    ) -> PyResult<Self> {
        let segmenter = segmenter.to_string();
        guarded(py, move || {
            let tok = WordPieceTokenizer::from_path(&vocab, do_lower_case)?;
            let seg = match segmenter.as_str() {
                "none" => Segmenter::None,
                "jieba" => Segmenter::jieba(hmm, user_dict.as_deref())?,
                s => return Err(Error::Invalid(format!("unknown segmenter {s:?}"))),
            };
            Ok(Self { tok, seg })
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.tok.vocab_size()
    }
    #[getter]
    fn vocab_sha256(&self) -> String {
        self.tok.vocab_sha256.clone()
    }
    #[getter]
    fn do_lower_case(&self) -> bool {
        self.tok.do_lower_case
    }

    /// Token ids (uint32) and byte offsets (uint64, [n, 2]) of `text`, no special tokens.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> PyResult<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray2<u64>>)> {
        let (ids, offsets) = self.tok.encode(text).map_err(to_py)?;
        let flat: Vec<u64> = offsets
            .iter()
            .flat_map(|&(s, e)| [s as u64, e as u64])
            .collect();
        let offs = flat.into_pyarray(py).reshape([offsets.len(), 2])?;
        Ok((ids.into_pyarray(py), offs))
    }

    /// The segmenter's words.
    fn cut(&self, text: &str) -> Vec<String> {
        self.seg.cut(text).into_iter().map(String::from).collect()
    }

    /// Token ids and whole-word continuation marks, as the prep pipeline computes them.
    fn tokens_and_marks<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> PyResult<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<bool>>)> {
        let (ids, offsets) = self.tok.encode(text).map_err(to_py)?;
        let words = self.seg.words(text);
        let marks = continuation_marks(&self.tok, text, &ids, &offsets, &words);
        Ok((ids.into_pyarray(py), marks.into_pyarray(py)))
    }

    fn token(&self, id: u32) -> PyResult<String> {
        if (id as usize) < self.tok.vocab_size() {
            Ok(self.tok.token(id).to_string())
        } else {
            Err(WwmDistillError::new_err(format!("id {id} out of range")))
        }
    }

    /// Ids a random replacement may take (all but `[...]` tokens).
    fn replacement_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        self.tok.replacement_ids().to_vec().into_pyarray(py)
    }
}
