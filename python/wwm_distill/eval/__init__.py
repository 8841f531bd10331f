"""Downstream evaluation: fine-tune Chinese BERT/RoBERTa checkpoints on public tasks and
score them, several seeds per model (``distill-eval``).

Tasks (``--task``) and their families:

* sentence pair: ``lcqmc``, ``afqmc`` (labels 0/1), ``cmnli``, ``xnli`` (entailment /
  neutral / contradiction; XNLI's ``contradictory`` is read as contradiction; ``-`` records
  are skipped);
* single sentence: ``tnews``, ``thucnews`` (labels taken from the train split),
  ``chnsenticorp`` (0/1);
* span extraction: ``cmrc2018``, ``drcd`` (SQuAD-format JSON; CMRC2018 metric);
* ``mlm``: no fine-tuning; masked-LM top-1 / top-5 accuracy, cross entropy and perplexity
  on held-out ``distill-prep`` examples, and with a teacher cache top-1 agreement and KL
  over the stored entries (``mlm``), one deterministic run per model.

A pair or single-sentence task given one labelled file instead of train and dev splits
gets a seeded stratified train/test split (``data.stratified_split``).

Fine-tuning defaults (the Chinese BERT-wwm / CLUE baselines):

==================  ===========  ==========
setting             pair/single  span
==================  ===========  ==========
learning rate       2e-5         3e-5
batch size          32           32
epochs              3            2
max sequence        128          384
warm-up             10 %         10 %
weight decay        0.01         0.01
doc stride          -            128 tokens of overlap between windows
max answer length   -            30 tokens
n-best              -            20
==================  ===========  ==========

Modules: ``tasks`` (task registry, split files), ``data`` (format loaders, stratified
split), ``features`` (encoding, sliding windows, span decoding), ``metrics``, ``finetune``
(one run), ``mlm`` (masked-LM scores of one model), ``runner`` (all runs, ``results.json``),
``report`` (Markdown tables).
"""

from wwm_distill.eval.tasks import TASKS, Task, find_split

__all__ = ["TASKS", "Task", "find_split"]
