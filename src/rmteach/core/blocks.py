"""Config blocks shared by the commands: the policy, a reward model, a data set, sampling settings.

The command configs (`evaluate.config`, `train.config`, `study.config`) are built from these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from .config import Strict, check_device
from .remote import RemoteRMConfig

MAX_SEED = 2**32 - 1  # numpy's and TRL's limit: a larger seed fails deep inside a run
Dtype = Literal["auto", "float32", "bfloat16", "float16"]



class ScaleTransform(Strict):
    """Multiply an RM's rewards by `factor` on a seeded random `fraction` of prompts.

    With `factor=0.001, fraction=0.5` on the ground truth this is the paper's perfectly accurate but
    low-variance RM: the ranking within every prompt is kept (accuracy 1), the variance collapses on half
    the prompts. Prompts are chosen by a seeded hash of their text, so the same prompt is chosen in
    `evaluate` and in `train` whatever set it comes in.
    """

    kind: Literal["scale_fraction"] = "scale_fraction"
    fraction: float = Field(0.5, ge=0.0, le=1.0, description="share of prompts whose rewards are scaled")
    factor: float = Field(0.001, gt=0.0, description="multiplier applied on the chosen prompts")
    seed: int = Field(0, ge=0, description="seed of the prompt choice")


class CustomRMConfig(Strict):
    """A reward model built by your own code (`backends.reward_custom`): e.g. a multi-head RM such as ArmoRM.

    The builder is called once as `builder(path=..., device=..., dtype=..., **kwargs)` and returns a scorer,
    called per batch as `scorer(prompts=[...], completions=[...], **extras)`.
    """

    builder: str = Field(..., description="'module:attribute' of the function that builds the scorer")
    path: str | None = Field(None, description="a model folder or hub id, handed to the builder as `path`")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="more keyword arguments of the builder")
    output: str | int | list[str | int] | None = Field(
        None, description="which of the scorer's outputs is the reward: an attribute or key name, a column index "
        "of an (n, heads) array, or a list of them applied in turn ([rewards, 0]); unset: the output itself")

    @model_validator(mode="after")
    def _checked(self) -> "CustomRMConfig":
        if ":" not in self.builder:
            raise ValueError(f"builder must look like 'module:attribute' (got {self.builder!r})")
        steps = self.output if isinstance(self.output, list) else [self.output]
        if self.output == [] or any(isinstance(s, int) and s < 0 for s in steps):
            raise ValueError("output: a name, a column index >= 0, or a non-empty list of them")
        if taken := sorted({"path", "device", "dtype"} & set(self.kwargs)):
            raise ValueError(f"kwargs: {', '.join(taken)} are the builder's own arguments (set path here, device and "
                             "dtype on the command or the RM)")
        return self


class JudgeExample(Strict):
    """One few-shot example of an LLM judge: a (prompt, response) pair and the label it deserves."""

    prompt: str = Field(..., description="the example's prompt")
    response: str = Field(..., description="the example's response")
    label: str = Field(..., description="its answer: one of the judge's labels")


class JudgeConfig(Strict):
    """An LLM judge (`backends.reward_judge`): a causal LM asked a templated question about (prompt, response);
    the reward is read from its next-token log-probabilities of the label tokens, in one forward pass."""

    path: str | None = Field(None, min_length=1, description="local directory or hub id of an AutoModelForCausalLM")
    http: RemoteRMConfig | None = Field(
        None, description="instead of path: an OpenAI-compatible chat-completions server that returns logprobs "
        "(url: .../v1/chat/completions, model, api_key_env, retries, concurrency, timeout_s)")
    template: str = Field(..., min_length=1, description="the question: a Python format string with {prompt} and "
                          "{response} (write {{ and }} for literal braces)")
    labels: list[str] = Field(..., min_length=2, description="the answers whose FIRST token is scored, e.g. "
                              "[' Yes', ' No'] or ['1', ..., '9']; tokenized on their own")
    values: list[float] | None = Field(
        None, description="one number per label: the reward is their expectation under the judge's probabilities "
        "renormalised over the labels; unset (two labels only): log p(labels[0]) - log p(labels[1])")
    examples: list[JudgeExample] = Field(default_factory=list, description="few-shot examples asked and answered "
                                         "before the question")
    chat: bool = Field(True, description="render the question (and examples) as user turns through the judge's "
                       "chat template when it has one; false: plain text")
    max_length: int = Field(2048, ge=8, description="keep at most this many tokens (cut on the left: the question's "
                            "end, where the answer is read, stays)")
    revision: str | None = Field(None, description="hub revision of path")
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _checked(self) -> "JudgeConfig":
        import string

        if (self.path is None) == (self.http is None):
            raise ValueError("a judge needs exactly one of 'path' (a local causal LM) or 'http' (a chat-completions "
                             "server)")
        if self.http is not None:
            defaults = type(self).model_fields
            local = [k for k in ("chat", "max_length", "revision", "trust_remote_code")
                     if getattr(self, k) != defaults[k].default]
            local += [f"http.{k}" for k in ("protocol", "batch_size") if k in self.http.model_fields_set]
            if local:
                raise ValueError(f"{', '.join(local)}: not options of an http judge (one chat conversation per "
                                 "request): remove them")
            if self.http.model is None:
                raise ValueError("http.model: an http judge needs the served model's name")

        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None}
        except ValueError as e:
            raise ValueError(f"template is not a format string ({e}); write {{{{ and }}}} for literal braces") from None
        if unknown := sorted(fields - {"prompt", "response"}):
            raise ValueError(f"template: unknown field(s) {', '.join('{' + f + '}' for f in unknown)}; allowed: "
                             "{prompt} and {response}")
        if "response" not in fields:
            raise ValueError("template must hold {response} (and usually {prompt})")
        if len(set(self.labels)) != len(self.labels) or "" in self.labels:
            raise ValueError("labels must be distinct, non-empty strings")
        if self.values is None and len(self.labels) != 2:
            raise ValueError(f"{len(self.labels)} labels need values (one number each); without values a judge has "
                             "exactly two labels (reward: log p(labels[0]) - log p(labels[1]))")
        if self.values is not None and len(self.values) != len(self.labels):
            raise ValueError(f"values: {len(self.values)} numbers for {len(self.labels)} labels; give one per label")
        if bad := [e.label for e in self.examples if e.label not in self.labels]:
            raise ValueError(f"examples: label {bad[0]!r} is not one of labels {self.labels}")
        return self


# Options of the Hugging Face backend (`path`): refused on the other backends, where they would do nothing.
HF_ONLY = ("max_length", "truncation_side", "tokenizer", "revision", "chat_template", "system_prompt", "device_map",
           "load_in_8bit", "load_in_4bit", "trust_remote_code", "allow_new_head")


class RewardModelConfig(Strict):
    """One reward model: a Hugging Face sequence classifier (`path`), a Python callable (`callable`), a model
    served over HTTP (`http`: OpenRLHF's remote-RM or vLLM's score protocol; `rmteach serve-rm` serves one), or
    a scorer built by your own code (`custom`), or an LLM judge (`judge`)."""

    # -- What it is: exactly one of path, callable, http, custom ----------------------------------------------
    name: str = Field(..., min_length=1, description="unique name used in reports")
    path: str | None = Field(None, description="local directory or hub id of an AutoModelForSequenceClassification")
    callable: str | None = Field(
        None, description="'module:attribute' of a function (prompts, completions, **kwargs) -> list[float]"
    )
    http: RemoteRMConfig | None = Field(None, description="a reward model served over HTTP: url, protocol, ...")
    custom: CustomRMConfig | None = Field(None, description="a scorer your code builds: builder, path, kwargs, output")
    judge: JudgeConfig | None = Field(None, description="an LLM judge: path, template, labels, values, examples")
    transform: ScaleTransform | None = Field(None, description="optional reward transform")
    batch_size: int | Literal["auto"] = Field(
        16, description="sequences per forward pass (hf, custom) or per call (callable: at least 256); auto: start "
        "at 64 on a GPU (16 elsewhere) and halve at each out-of-memory, keeping the size that fits (hf, custom); "
        "an http RM's batch size is http.batch_size")
    dtype: Dtype | None = Field(None, description="this RM's dtype (hf, custom), instead of the command's `dtype`")
    timeout_s: float | None = Field(
        None, gt=0.0, description="callable, custom: seconds one call of the function or scorer may take; a call "
        "that takes longer stops the command (exit 2) naming the RM and the prompt (unset: no limit; an http RM's "
        "limit is http.timeout_s)")

    # -- Hugging Face options (path only) ---------------------------------------------------------------------
    max_length: int = Field(2048, ge=8, description="truncate (prompt + response) to this many RM tokens")
    truncation_side: Literal["left", "right"] = Field(
        "left", description="which end a conversation longer than max_length loses: left (the default) keeps the "
        "end of the response, whose last token the reward head reads; right keeps the start of the conversation")
    tokenizer: str | None = Field(None, description="a tokenizer folder or hub id to use instead of path's own")
    revision: str | None = Field(
        None, description="hub revision (branch, tag or commit) of path, for the model and its own tokenizer; "
        "transformers ignores it for a local folder")
    chat_template: str | None = Field(
        None, description="a Jinja chat template to use instead of the tokenizer's, or 'none': score plain "
        "prompt + response text even when the tokenizer has a template")
    system_prompt: str | None = Field(
        None, description="a system message put first in the RM's conversation (replacing one the prompt opens with)")
    device_map: Literal["auto"] | None = Field(
        None, description="auto: accelerate places the model over the visible GPUs (then CPU memory) instead of "
        "putting it on the command's device")
    load_in_8bit: bool = Field(False, description="8-bit weights (bitsandbytes, CUDA only; pip install rmteach[quant])")
    load_in_4bit: bool = Field(False, description="4-bit NF4 weights (bitsandbytes, CUDA only; rmteach[quant])")
    trust_remote_code: bool = False
    allow_new_head: bool = Field(
        False, description="score with a freshly initialised (seeded) head when the checkpoint has none, e.g. a "
        "causal LM's folder; by default such a checkpoint is refused, since its rewards would be random")

    @model_validator(mode="after")
    def _one_source(self) -> "RewardModelConfig":
        sources = {"path": self.path, "callable": self.callable, "http": self.http, "custom": self.custom,
                   "judge": self.judge}
        if sum(v is not None for v in sources.values()) != 1:
            raise ValueError(f"reward model '{self.name}' needs exactly one of 'path' or 'callable' or 'http' or "
                             "'custom' or 'judge'")
        if self.callable is not None and ":" not in self.callable:
            raise ValueError(f"reward model '{self.name}': callable must look like 'module:attribute'")
        source = next(k for k, v in sources.items() if v is not None)
        fields = type(self).model_fields  # an option at its default is no option (configs dumped whole say them all)
        misplaced = [k for k in HF_ONLY if getattr(self, k) != fields[k].default] if source != "path" else []
        if self.dtype is not None and source in ("callable", "http"):
            misplaced.append("dtype")
        if misplaced:
            kinds = "'path' or 'custom'" if misplaced == ["dtype"] else "'path'"
            are, it = ("is an option", "it") if len(misplaced) == 1 else ("are options", "them")
            raise ValueError(f"reward model '{self.name}': {', '.join(misplaced)} {are} of {kinds} RMs only; this "
                             f"one uses '{source}': remove {it}")
        if self.timeout_s is not None and source not in ("callable", "custom"):
            also = " (an http RM's is http.timeout_s)" if source == "http" else ""
            raise ValueError(f"reward model '{self.name}': timeout_s is an option of 'callable' and 'custom' RMs "
                             f"only{also}; this one uses '{source}': remove it")
        if self.load_in_8bit and self.load_in_4bit:
            raise ValueError(f"reward model '{self.name}': load_in_8bit or load_in_4bit, not both")
        return self

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, v: object) -> object:
        if v != "auto" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError("must be a whole number >= 1 or auto")
        return v


class PolicyConfig(Strict):
    """The policy: a Hugging Face causal LM (local directory or hub id)."""

    path: str = Field(..., min_length=1, description="local directory or hub id of an AutoModelForCausalLM")
    name: str | None = Field(None, description="name used in reports; defaults to the path's last part")
    trust_remote_code: bool = False

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path.rstrip("/")).name


DataField = Literal["prompt", "chosen", "rejected", "id"]  # rmteach's columns (`DataConfig.columns` maps onto them)


class DataConfig(Strict):
    """A prompt or preference set (`rmteach.core.data`): one local file or a `save_to_disk` folder (`path`), local
    data files (`data_files`), or a Hugging Face hub dataset (`hub`), read with `datasets`."""

    # -- Where: exactly one of path, data_files, hub (data_files may also pick files of a hub dataset) -------
    path: str | None = Field(
        None, min_length=1, description="a .jsonl (read line by line), .json, .parquet or .csv file, or a folder saved "
        "with save_to_disk")
    data_files: str | list[str] | dict[str, str | list[str]] | None = Field(
        None, description="local files for datasets.load_dataset (a file, a glob, a list, or {split: files}), all "
        ".json/.jsonl, .parquet or .csv; with hub: files of that dataset")
    hub: str | None = Field(
        None, min_length=1, description="a hub dataset id, or a local copy of a hub dataset repo (hf download "
        "--local-dir), read with datasets.load_dataset")
    subset: str | None = Field(None, min_length=1, description="hub: the dataset's configuration (load_dataset's name)")
    revision: str | None = Field(None, min_length=1, description="hub: a branch, tag or commit")
    split: str | None = Field(None, description="the split to read; needed when the source has several")

    # -- What: columns and rows --------------------------------------------------------------------------------
    columns: dict[DataField, str] = Field(
        default_factory=dict, description="the set's own column names of rmteach's, e.g. {prompt: instruction}")
    limit: int | None = Field(None, ge=1, description="use only the first `limit` rows")

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        if sum(v is not None for v in (self.path, self.hub, self.data_files if self.hub is None else None)) != 1:
            raise ValueError("needs exactly one of 'path' or 'hub' or 'data_files' (data_files may come with hub, to "
                             "pick files of that dataset)")
        if self.hub is None and (self.subset is not None or self.revision is not None):
            raise ValueError("'subset' and 'revision' are options of a 'hub' dataset")
        if len(set(self.columns.values())) != len(self.columns) or "" in self.columns.values():
            raise ValueError("columns: each of rmteach's columns needs its own (non-empty) column of the set")
        return self

    @property
    def where(self) -> str:
        """The source, for messages: the path, the data files, or `hub <id>[/<subset>]`."""
        if self.hub is not None:
            return f"hub {self.hub}" + (f"/{self.subset}" if self.subset else "")
        return self.path if self.path is not None else str(self.data_files)


class VLLMOptions(Strict):
    """Settings of the vLLM sampler (`sampling.backend: vllm`; the optional extra `rmteach[vllm]`)."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one copy of the policy is split over")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="share of each GPU's memory vLLM takes")
    enforce_eager: bool = Field(False, description="no CUDA graphs: slower, but starts faster and uses less memory")
    max_model_len: int | None = Field(None, ge=16, description="context length vLLM reserves (default: the model's)")


class SamplingConfig(Strict):
    """How responses are sampled from the policy."""

    samples_per_prompt: int = Field(8, ge=2, description="K responses per prompt (pairs need K >= 2)")
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1, description="prompts per generate call (each yields K sequences)")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="hf: transformers generate (batch b seeded with seed + b); vllm: one seed per prompt "
        "(seed + its index), so its samples depend neither on the batch size nor on the processes")
    vllm: VLLMOptions | None = Field(None, description="vLLM settings (only with backend: vllm)")

    @model_validator(mode="after")
    def _vllm_only_with_vllm(self) -> "SamplingConfig":
        if self.vllm is not None and self.backend != "vllm":
            raise ValueError("'vllm' settings need backend: vllm")
        return self


# "auto", "cpu", "cuda", "cuda:1", "mps": checked wherever a config has a device field.
Device = Annotated[str, AfterValidator(check_device)]
