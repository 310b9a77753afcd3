"""Worst-case token counts of a request, worked out before it is sent.

Before a call of a tenant with a spend limit goes out, tollmeter reserves the call's worst-case
cost. `estimate_request` turns the call's keyword arguments into an upper bound of the input
tokens it can be billed for and the most output tokens it can generate. It runs on the caller's
thread before every such call, so it walks the request's structures directly (no JSON
serialisation, no tokenizer): about 4.5 µs for a typical three-message chat request on a
shared 2-core CI machine (CPython 3.11), of which ~0.5 µs per message string.

It never raises: odd input (missing keys, None, wrong types, SDK sentinels such as
`openai.NOT_GIVEN`, cycles, nesting deeper than `MAX_DEPTH`) gives a conservative estimate.

The text rule
-------------
Without a tokenizer, a string's tokens are bounded from its UTF-8 bytes::

    tokens(s) = ceil(other_ascii / 2 + non_ascii_bytes / 1.5) + ascii_digits

* 2 ASCII bytes per token: OpenAI's cl100k/o200k and Claude 3-4.6 average 3.2-4.4 bytes per
  token on English, code and JSON (Google documents ~4 characters per Gemini token); 2 holds
  for the densest chunks we measured (short C macros, tabbed JSON, URL-encoded links) except
  for high-entropy strings (hex, base64, random identifiers), which can reach ~1.4 bytes per
  token and are not bounded by this rule.
* Every ASCII digit counts one token: Gemini/Gemma, Qwen and SentencePiece models split numbers
  into single digits (cl100k/o200k group them by three).
* 1.5 non-ASCII bytes per token: 2 tokens per CJK character (3 bytes), 1.33 per Cyrillic/Greek
  letter (2 bytes); measured worst chunks: Chinese 1.9, Japanese 2.5, Greek 1.9 bytes per
  cl100k token. Rare CJK characters and emoji can fall back to ~1.3 bytes per token.
* Claude tokenizers are less efficient, so text is multiplied by a model factor: x1.35 for
  Claude 3 to 4.6 and x1.65 for Claude 4.7 and later (Anthropic: "1.0-1.35x more tokens" than
  4.6; independent count_tokens measurements: up to 1.47x on English and technical prose) and for
  Claude models whose version is unknown. Other models: x1.

Measured (see tests/test_estimate.py) on ~5,000 chunks of 200-1,000 characters of English
prose, Python, C, JS, YAML, JSON, Chinese, Japanese, Korean, Russian, Greek and German, against
the real cl100k_base/o200k_base vocabularies (tiktoken, offline data) and reconstructed Claude v3
and v4.7 counts (ctok): no chunk of natural text exceeded the bound but one 60-byte fragment of
tab-indented JSON version strings ("^0.24.0"), by 11% (covered by the per-message overhead), and
two CJK chunks of the v4.7 reconstruction, whose CJK vocabulary is incomplete (Anthropic's
count_tokens shows CJK unchanged from 4.6). The bound overestimates English by about 2.05x for
OpenAI's tokenizers, ~2.45x for Claude 3-4.6 and ~2.2x for Claude 4.7+.

Structure
---------
Per message `PER_MESSAGE_TOKENS` (OpenAI: 3-4 per message; Claude similar) and per request
`PER_REQUEST_TOKENS` (OpenAI primes each reply with 3; Claude's message frame is 6-11). Tool
definitions are walked: keys and values counted as text plus punctuation allowance, plus
`TOOL_TOKENS` per tool and, on Anthropic and Bedrock, `TOOLS_SYSTEM_PROMPT_TOKENS` for the tool
system prompt. Images and documents are fixed per-part bounds (see the constants below);
server-side state (previous_response_id, cached_content, stored prompts) and hosted tools whose
results are billed as input (web/file search, code execution, MCP) add documented allowances:
their true size is unknowable before the call.

Formats
-------
This module is the shared machinery: the text rule, the accumulator and the walkers every
format uses, the model tables, and `estimate_generic` for requests of no known format. How
the requests of one wire format are walked (its messages, content parts, tools and caps) lives
beside that format's readers in `tollmeter.formats`, as a `RequestFormat`; an endpoint names
the format it speaks and estimates through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator

__all__ = [
    "RequestEstimate", "RequestFormat", "estimate_request", "estimate_generic", "upper_bound", "counted_tokens",
    "max_output_tokens",
    "text_tokens", "text_bytes", "Acc", "as_mapping", "member", "cap_value", "choice_count", "walk", "walk_text",
    "walk_parts", "walk_items", "walk_messages", "walk_tools", "walk_generic", "hosted_tool_tokens", "GENERIC",
    "token_rules",
]


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    input_tokens: int  # an upper-bound estimate of all input tokens billed
    output_tokens: int  # the most output tokens the call may bill (per-choice max x n)
    images: int  # image / file parts seen (already counted inside input_tokens)


# -- constants -------------------------------------------------------------------------------

#: Per message: OpenAI documents 3 (+1 with a name) per message; Claude's are similar.
PER_MESSAGE_TOKENS = 5
#: Per request: OpenAI primes every reply with 3 tokens; Claude's frame of a one-message request
#: is 6-11 tokens (measured by count_tokens minus content).
PER_REQUEST_TOKENS = 12
#: Per tool definition, on top of its walked JSON (name/namespace wrapping).
TOOL_TOKENS = 10
#: Anthropic's tool-use system prompt, added when tools are given: 346 tokens for Claude 4 and
#: 3.5/3.7 Sonnet, up to 530 for Claude 3 Opus (Anthropic's tool-use pricing table).
TOOLS_SYSTEM_PROMPT_TOKENS = 600
#: Anthropic-defined client tools (bash, text editor, computer use, memory): their definitions
#: are not in the request. Bash 245, text editor 700, computer use 735 + a 466-499 token system
#: prompt (Anthropic's tool docs).
ANTHROPIC_DEFINED_TOOL_TOKENS = 1_500
#: Hosted tools whose results are billed as input tokens within the same call (web search, file
#: search, web fetch, code execution, MCP servers, Google Search grounding, ...). Unknowable;
#: OpenAI bills e.g. a fixed 8,000-token block of search content per web search call on its mini
#: models. One allowance per declared tool.
HOSTED_TOOL_TOKENS = 10_000
#: Context held server-side and referenced by id (Responses' previous_response_id, conversation,
#: item_reference and stored prompts; Gemini's cached_content; Bedrock prompt management).
STORED_CONTEXT_TOKENS = 32_768
#: One image, when the model family has no more specific bound. Covers OpenAI's tile models
#: (gpt-4o: 85 + 8 x 170 = 1,445), patch models (1,536 patches x up to 2.46 for *-nano = 3,779)
#: and Gemini (258 per 768px tile, 1,120 for Gemini 3 "high" media resolution).
IMAGE_TOKENS = 4_000
#: gpt-4o-mini bills images at 2,833 + 5,667 per 512px tile, up to 8 tiles (OpenAI vision docs).
IMAGE_TOKENS_GPT_4O_MINI = 48_200
#: OpenAI `detail: "original"`: up to 10,000 32px patches, x up to 2.46 on *-nano models.
IMAGE_TOKENS_ORIGINAL_DETAIL = 25_000
#: Claude up to 4.6: images above ~1.15 MP / 1,568 px are downscaled; width*height/750 <= ~1,600.
IMAGE_TOKENS_CLAUDE = 1_600
#: Claude Opus 4.7 and later read up to 2,576 px on the long edge (~3.75 MP / 750 = 5,000).
IMAGE_TOKENS_CLAUDE_HIGH_RES = 5_000
#: A document, file, audio or video part: per-page/per-second and unknowable before the call
#: (Claude: ~1,500-3,000 text tokens plus an image per PDF page; Gemini: 258 per page, ~300 per
#: second of video). A large documented constant: about 10-20 PDF pages.
DOCUMENT_TOKENS = 30_000
#: Walk limits: deeper or larger structures stop being walked and add `TRUNCATED_TOKENS`.
MAX_DEPTH = 48
MAX_NODES = 1_000_000
TRUNCATED_TOKENS = 32_768
#: `estimate_request` hit an unexpected error: this is added to what was counted so far.
ERROR_TOKENS = 32_768

#: Output bound for a model this module does not know (Llama, Mistral, Qwen, ...): many serve
#: 4,096-32,768; a documented fallback, not a guarantee.
DEFAULT_MAX_OUTPUT_TOKENS = 32_768
#: Output bound when no model name is known at all: the largest mainstream maximum (GPT-5 and
#: Claude 4.6+ families, 128,000).
UNKNOWN_MODEL_MAX_OUTPUT_TOKENS = 128_000

# -- the text rule ---------------------------------------------------------------------------

_DIGITS = b"0123456789"
_IDENTITY = bytes(range(256))  # translate() with a table is about twice as fast as with None


def text_tokens(s: str) -> int:
    """Upper bound of one string's tokens (before the model factor); see the module docstring."""
    n = len(s)
    if s.isascii():
        d = n - len(s.encode().translate(_IDENTITY, _DIGITS))
        return ((n - d + 1) >> 1) + d
    b = s.encode("utf-8", "surrogatepass")
    nb = len(b)
    na = nb - n  # extra bytes of the non-ASCII characters
    na = min(na + na, nb)  # upper bound of their bytes: 2 extra -> 3 bytes, ...
    d = nb - len(b.translate(_IDENTITY, _DIGITS))
    a = max(nb - na - d, 0)
    return (3 * a + 4 * na + 5) // 6 + d


def text_bytes(s: str) -> int:
    """At least `text_tokens(s)`, from the string's length alone: its UTF-8 size for ASCII
    (ceil(other/2) + digits <= bytes), four bytes a character otherwise (UTF-8 never takes more,
    and the rule never counts a byte more than once). For `upper_bound`."""
    return len(s) if s.isascii() else 4 * len(s)


def _int_tokens(v: int) -> int:
    # one token per digit, digits <= bit_length * log10(2) + 1
    return (abs(v).bit_length() * 3) // 10 + 2


# -- the accumulator -------------------------------------------------------------------------


class Acc:
    __slots__ = (
        "text",
        "fixed",
        "images",
        "nodes",
        "truncated",
        "image_tokens",
        "extra_output",
        "choices",
        "path",
    )

    def __init__(self, image_tokens: int) -> None:
        self.text = 0  # text tokens before the model factor
        self.fixed = 0  # structural, image and document tokens
        self.images = 0
        self.nodes = 0
        self.truncated = False
        self.image_tokens = image_tokens
        self.extra_output = 0  # output tokens billed on top of the choices (rejected predictions)
        self.choices = 1  # n / best_of / candidate_count: each choice may reach the cap
        self.path: set[int] = set()  # ids of the containers being walked: cycles stop there

    def image(self, detail: Any = None) -> None:
        self.images += 1
        if detail == "original":
            self.fixed += max(self.image_tokens, IMAGE_TOKENS_ORIGINAL_DETAIL)
        else:
            self.fixed += self.image_tokens

    def document(self) -> None:
        self.images += 1
        self.fixed += DOCUMENT_TOKENS

    def media(self, mime: Any) -> None:
        if type(mime) is str and mime.lower().startswith("image/"):
            self.image()
        else:
            self.document()


def as_mapping(v: Any) -> Mapping | None:
    """`v` as a mapping: a dict, a Mapping, or a pydantic object's `model_dump()`; else None."""
    if type(v) is dict:
        return v
    if v is None or type(v) is str:
        return None
    if isinstance(v, Mapping):
        return v
    if isinstance(v, type):
        return None
    try:
        dump = getattr(v, "model_dump", None)
    except Exception:
        return None
    if dump is None or not callable(dump):
        return None
    try:
        d = dump(exclude_none=True)
    except Exception:
        try:
            d = dump()
        except Exception:
            return None
    return d if isinstance(d, Mapping) else None


def member(m: Any, key: str, alt: str | None = None) -> Any:
    """`m[key]` (or `m[alt]`) from a mapping, or the attribute from an object; None if absent."""
    if isinstance(m, Mapping):
        v = m.get(key)
        if v is None and alt is not None:
            v = m.get(alt)
        return v
    if m is None or isinstance(m, (str, bytes, int, float, list, tuple)):
        return None
    try:
        v = getattr(m, key, None)
        if v is None and alt is not None:
            v = getattr(m, alt, None)
    except Exception:
        return None
    return v


def cap_value(v: Any) -> int | None:
    """A non-negative int (not bool); anything else (None, sentinels, strings) is absent."""
    return v if type(v) is int and v >= 0 else None


def choice_count(v: Any) -> int:
    """`n`, `best_of`, `candidate_count`: an int >= 1, else 1."""
    return v if type(v) is int and v >= 1 else 1


def _is_data_url(s: str) -> bool:
    return s.startswith("data:") and ";base64," in s[:200]


def walk(acc: Acc, v: Any, depth: int = 0) -> None:
    """Count everything in an arbitrary JSON-like value: strings as text, keys included, plus
    one token of punctuation per value; bytes, data URLs and PIL images as images."""
    acc.nodes += 1
    if depth > MAX_DEPTH or acc.nodes > MAX_NODES:
        acc.truncated = True
        return
    t = type(v)
    if t is str:
        if len(v) > 64 and _is_data_url(v):
            acc.media(v[5 : v.find(";")])
        else:
            acc.text += text_tokens(v) + 1
    elif t is dict or t is list or t is tuple:
        key = id(v)
        if key in acc.path:  # a cycle
            acc.truncated = True
            return
        acc.path.add(key)
        acc.fixed += 1
        depth += 1
        if t is dict:
            for k, x in v.items():
                if type(k) is str:
                    acc.text += text_tokens(k) + 1
                walk(acc, x, depth)
        else:
            for x in v:
                walk(acc, x, depth)
        acc.path.discard(key)
    elif t is int:
        acc.text += _int_tokens(v)
    elif t is float:
        acc.text += len(repr(v))
    elif v is None or t is bool:
        acc.fixed += 1
    elif t is bytes or t is bytearray or t is memoryview:
        acc.image()
    else:
        _walk_object(acc, v, depth)


def _walk_object(acc: Acc, v: Any, depth: int) -> None:
    if isinstance(v, str):
        acc.text += text_tokens(str(v)) + 1
        return
    if isinstance(v, Mapping):
        walk(acc, dict(v), depth)
        return
    if isinstance(v, (list, tuple, set, frozenset)):
        walk(acc, list(v), depth)
        return
    if isinstance(v, int) and not isinstance(v, bool):
        acc.text += _int_tokens(int(v))
        return
    if isinstance(v, type):
        schema = getattr(v, "model_json_schema", None)  # a pydantic model class as a schema
        if callable(schema):
            try:
                walk(acc, schema(), depth + 1)
            except Exception:
                acc.fixed += 500
        return
    module = type(v).__module__ or ""
    if module.startswith("PIL."):  # a PIL image (Google Gen AI accepts them in contents)
        acc.image()
        return
    m = as_mapping(v)
    if m is not None:
        walk(acc, m, depth)
        return
    if callable(v):  # a Python function given as a tool (Google Gen AI, agent frameworks)
        name = getattr(v, "__name__", "")
        doc = getattr(v, "__doc__", "")
        acc.text += (text_tokens(name) if isinstance(name, str) else 0) + (
            text_tokens(doc) if isinstance(doc, str) else 0
        )
        acc.fixed += 100
    # anything else (SDK sentinels, file handles, ...) is absent


def walk_text(acc: Acc, v: Any) -> None:
    """A value expected to be text: a string is counted directly, anything else walked."""
    if type(v) is str:
        acc.text += text_tokens(v)
    elif v is not None:
        walk(acc, v, 1)


def hosted_tool_tokens(kind: str) -> int:
    """A built-in tool of the provider's (web search, file search, code interpreter, MCP, ...):
    its results are billed as input within the call."""
    return HOSTED_TOOL_TOKENS


def walk_tools(acc: Acc, tools: Any, builtin: Callable[[str], int] = hosted_tool_tokens,
               system_prompt: int = 0) -> None:
    """Tool definitions: each walked, plus `TOOL_TOKENS`; a tool whose `type` is neither
    "function" nor "custom" is one of the provider's own and adds `builtin(type)`; a format
    whose tools come with a system prompt of their own adds `system_prompt` once."""
    if tools is None:
        return
    if not isinstance(tools, (list, tuple)) or not tools:
        if tools is not None and as_mapping(tools) is not None:
            tools = [tools]
        else:
            return
    acc.fixed += system_prompt
    for tool in tools:
        acc.fixed += TOOL_TOKENS
        m = as_mapping(tool)
        if m is None:
            walk(acc, tool, 1)
            continue
        walk(acc, m, 1)
        typ = m.get("type")
        if type(typ) is not str or typ in ("function", "custom"):
            continue
        acc.fixed += builtin(typ)


#: Reads one content part (a mapping) of a format's message content.
PartWalker = Callable[[Acc, Mapping, int], None]


def walk_parts(acc: Acc, content: Any, part: PartWalker, depth: int = 1, strings: bool = True) -> None:
    """A message's content: a string, or a list of parts each read by `part(acc, mapping,
    depth)`; a bare string in the list is text (with `strings`; else walked like any value),
    anything that is not a mapping is walked. Nesting deeper than 8 is walked."""
    if type(content) is str:
        acc.text += text_tokens(content)
        return
    if not isinstance(content, (list, tuple)) or depth > 8:
        if content is not None:
            walk(acc, content, depth)
        return
    for m in walk_items(acc, content, depth + 1, strings):
        part(acc, m, depth)


def walk_items(acc: Acc, items: Iterable[Any], depth: int = 1, strings: bool = True,
               per_item: int = 0) -> Iterator[Mapping]:
    """The mappings among `items`, for the caller to read; each item adds `per_item` tokens,
    a string item is text (with `strings`; else walked like any value) and any other item that
    is not a mapping is walked at `depth`."""
    for item in items:
        acc.fixed += per_item
        if strings and type(item) is str:
            acc.text += text_tokens(item)
            continue
        m = as_mapping(item)
        if m is None:
            walk(acc, item, depth)
            continue
        yield m


def walk_messages(acc: Acc, messages: Any, part: PartWalker) -> None:
    """A list of role/content messages (OpenAI chat, Anthropic): `PER_MESSAGE_TOKENS` each, the
    content through `walk_parts`, every other field but the role walked."""
    if type(messages) is not list:
        if isinstance(messages, (list, tuple)):
            messages = list(messages)
        elif messages is None:
            return
        else:
            walk(acc, messages, 1)
            return
    for message in messages:
        acc.fixed += PER_MESSAGE_TOKENS
        m = message if type(message) is dict else as_mapping(message)
        if m is None:
            walk(acc, message, 1)
            continue
        for k, v in m.items():
            if k == "content":
                if type(v) is str:
                    acc.text += text_tokens(v)
                elif v is not None:
                    walk_parts(acc, v, part)
            elif k != "role" and v is not None:
                walk(acc, v, 1)


# -- anything else ---------------------------------------------------------------------------

_CAP_KEYS = (
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "maxTokens",
    "max_new_tokens",
    "maxOutputTokens",
    "max_gen_len",  # Bedrock Llama
    "maxTokenCount",  # Bedrock Titan
)


def walk_generic(acc: Acc, kw: Mapping) -> int | None:
    """A request of no known shape: every string in it; its cap, the largest of the usual
    cap keys it carries."""
    walk(acc, dict(kw), 0)
    caps = [c for c in (cap_value(kw.get(k)) for k in _CAP_KEYS) if c is not None]
    return max(caps) if caps else None


# -- models ----------------------------------------------------------------------------------

_BEDROCK_PREFIX = re.compile(
    r"^(?:(?:us|eu|apac|ap|global|jp|au|ca|us-gov)\.)?"
    r"(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek|qwen|openai|writer|google|moonshot"
    r"|minimax)\."
)
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")
_DOTTED = re.compile(r"(?<=\d)\.(?=\d)")
_CLAUDE_VERSION = re.compile(r"(?<![0-9])(\d{1,2})(?:-(\d{1,2}))?(?![0-9])")


def _normalize(model: str) -> str:
    """'us.anthropic.claude-3-7-sonnet-20250219-v1:0' -> 'claude-3-7-sonnet',
    'openai/gpt-4.1-mini' -> 'gpt-4-1-mini', 'models/gemini-2.5-pro' -> 'gemini-2-5-pro'."""
    m = model.strip().lower()
    m = m.rsplit("/", 1)[-1]
    m = m.removeprefix("ft:")  # OpenAI fine-tunes: ft:gpt-4o-mini-2024-07-18:org::id
    m = _BEDROCK_PREFIX.sub("", m)
    m = _VERSION_SUFFIX.sub("", m)
    m = m.split(":", 1)[0].split("@", 1)[0]
    m = _VERSION_SUFFIX.sub("", m)
    m = _DOTTED.sub("-", m)
    m = m.removesuffix("-latest")
    m = _DATE_SUFFIX.sub("", m)
    return m


#: Documented maximum output tokens, matched by the longest prefix of the normalised name
#: (dots between digits written as dashes: 'gpt-4.1' -> 'gpt-4-1').
_MAX_OUTPUT_TABLE: dict[str, int] = {
    # OpenAI: "Max output tokens" on each model's page at platform.openai.com/docs/models.
    "gpt-3.5-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-4-32k": 32_768,
    "gpt-4-turbo": 4_096,
    "gpt-4-1106": 4_096,
    "gpt-4-0125": 4_096,
    "gpt-4-vision": 4_096,
    "gpt-4o": 16_384,  # also gpt-4o-mini, gpt-4o-search-preview, chatgpt-4o-latest
    "chatgpt-4o": 16_384,
    "gpt-4.1": 32_768,  # gpt-4.1, -mini, -nano
    "gpt-4.5": 16_384,
    "gpt-5": 128_000,  # gpt-5, -mini, -nano, gpt-5.1 ... gpt-5.5 (400K/1M context)
    "gpt-5-chat": 16_384,
    "gpt-5-pro": 272_000,
    "gpt-oss": 131_072,
    "o1": 100_000,
    "o1-mini": 65_536,
    "o1-preview": 32_768,
    "o3": 100_000,  # o3, o3-mini, o3-pro, o3-deep-research
    "o4-mini": 100_000,
    "codex-mini": 100_000,
    "davinci-002": 16_384,
    "babbage-002": 16_384,
    # Google: "Output token limit" at ai.google.dev/gemini-api/docs/models (Vertex lists 65,535
    # for 2.5 Pro; the larger is kept).
    "gemini-pro": 8_192,
    "gemini-1.0": 8_192,
    "gemini-1.5": 8_192,
    "gemini-2.0": 8_192,  # 2.0 Flash and Flash-Lite
    "gemini-2.0-flash-thinking": 65_536,
    "gemini-2.5": 65_536,  # 2.5 Pro, Flash, Flash-Lite
    "gemini-2.5-flash-image": 32_768,
    "gemini-3": 65_536,  # 3 Pro / 3.1 Pro / 3 Flash previews
    "gemini-3-pro-image": 32_768,
    # DeepSeek: api-docs.deepseek.com pricing page: chat 8K; reasoner 64K (V3.2; 32K CoT + 8K
    # answer for R1).
    "deepseek-chat": 8_192,
    "deepseek-reasoner": 65_536,
}
_TABLE = {_DOTTED.sub("-", k): v for k, v in _MAX_OUTPUT_TABLE.items()}
_TABLE_KEYS = sorted(_TABLE, key=len, reverse=True)


def _claude_version(name: str) -> tuple[int, int] | None:
    i = name.find("claude")
    match = _CLAUDE_VERSION.search(name, i + 6)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def _claude_max_output(name: str) -> int:
    # Anthropic's models overview ("Max output"): Claude 3 4,096; 3.5 8,192; 3.7 Sonnet 64,000
    # (128,000 with the output-128k beta header, not assumed); Sonnet 4 64,000; Opus 4 / 4.1
    # 32,000; 4.5 (Opus, Sonnet, Haiku) 64,000; Opus 4.6+, Sonnet 4.6 128,000 (the API's own error
    # for Opus 4.8: "128000, which is the maximum allowed"); unknown versions 128,000.
    version = _claude_version(name)
    if version is None:
        return 128_000
    major, minor = version
    if major < 3 or (major == 3 and minor == 0):
        return 4_096
    if major == 3:
        return 8_192 if minor <= 5 else 64_000
    if major == 4 and minor <= 1:
        return 32_000 if "opus" in name else 64_000
    if major == 4 and minor <= 5:
        return 64_000
    return 128_000


def _max_output(name: str) -> int:
    if "embed" in name:
        return 0
    if "claude" in name:
        return _claude_max_output(name)
    for key in _TABLE_KEYS:
        if name.startswith(key):
            value = _TABLE[key]
            if key == "gpt-5" and "-pro" in name:
                return _TABLE["gpt-5-pro"]
            return value
    if name.startswith("gpt-"):
        return 128_000
    if len(name) > 1 and name[0] == "o" and name[1].isdigit():
        return 100_000
    if name.startswith("gemini"):
        return 65_536
    if name.startswith("deepseek"):
        return 65_536
    return DEFAULT_MAX_OUTPUT_TOKENS


def max_output_tokens(model: str | None) -> int:
    """The most output tokens `model` can generate in one response (its documented maximum),
    used when a request gives no cap of its own."""
    if type(model) is not str:
        return UNKNOWN_MODEL_MAX_OUTPUT_TOKENS
    return _max_output_of(model)


@lru_cache(maxsize=1024)
def _max_output_of(model: str) -> int:
    if not model.strip():
        return UNKNOWN_MODEL_MAX_OUTPUT_TOKENS
    try:
        return _max_output(_normalize(model))
    except Exception:
        return UNKNOWN_MODEL_MAX_OUTPUT_TOKENS


# (text factor numerator, denominator, image tokens)
_OPENAI_PROFILE = (1, 1, IMAGE_TOKENS)
_CLAUDE_PROFILE = (27, 20, IMAGE_TOKENS_CLAUDE)  # x1.35
_CLAUDE_NEW_PROFILE = (33, 20, IMAGE_TOKENS_CLAUDE_HIGH_RES)  # x1.65


@lru_cache(maxsize=1024)
def _profile(model: str | None, claude_by_default: bool) -> tuple[int, int, int]:
    if model is None:
        return _CLAUDE_NEW_PROFILE if claude_by_default else _OPENAI_PROFILE
    try:
        name = _normalize(model)
    except Exception:
        return _CLAUDE_NEW_PROFILE
    if "claude" in name:
        version = _claude_version(name)
        return _CLAUDE_NEW_PROFILE if version is None or version >= (4, 7) else _CLAUDE_PROFILE
    if name.startswith("gpt-4o-mini"):
        return (1, 1, IMAGE_TOKENS_GPT_4O_MINI)
    return _OPENAI_PROFILE


@lru_cache(maxsize=1024)
def token_rules(model: str | None, claude_by_default: bool) -> tuple[int, int, int, int]:
    """(text factor numerator, denominator, image tokens, output maximum) of `model`: `_profile`
    and `max_output_tokens` in one look-up (for quick readers and the guard's table bounds)."""
    return (*_profile(model, claude_by_default), max_output_tokens(model))


# -- the entry point -------------------------------------------------------------------------

#: Counts a request's input into the accumulator; returns its output cap per choice (None: not
#: given, the model's maximum applies).
Walker = Callable[[Acc, Mapping], "int | None"]

#: Reads a request of the format's plainest shape without the walk: (text tokens before the
#: model factor, fixed tokens besides the per-request frame, output cap per choice or None,
#: choices); None for any other request, which is then walked. Must count exactly what the
#: walker would (a property test checks each one against its walker).
QuickReader = Callable[[dict], "tuple[int, int, int | None, int] | None"]
#: A `QuickReader` whose text count is only an upper bound of the walker's (`text_bytes`):
#: cheaper, for `upper_bound`.
SizeReader = QuickReader
#: Reads what a finished call of the format used from its deferred usage (`Call.deferred`:
#: the usage reader and the object it reads): (input tokens, output tokens), inclusive totals
#: as the usage convention counts them, without changing anything; None when the reader is not
#: the format's own, the counts are missing, or the usage reports audio tokens or a cost of its
#: own (their price is not bounded by the model's token rates).
UsedReader = Callable[[Callable, Any], "tuple[int, int] | None"]


class RequestFormat:
    """How the requests of one wire format are estimated: its walker and the rules around it.

    `claude_by_default`: a request that names no model is assumed to be for a Claude model (the
    costlier text factor and image bound); `embeds`: the format returns no output tokens and
    frames no reply; `caps_known`: the cap the walker returns is the request's own (False for
    requests of unknown semantics: the model's maximum is then never undercut); `quick`: a
    `QuickReader` for the format's commonest requests (the estimate runs before every call of
    a tenant with a limit); `sized`: a `SizeReader` for `upper_bound`; `used`: a `UsedReader`, by
    which a finished call's reservation is cut to what it used (`Guard.trim_finished`).
    """

    __slots__ = ("name", "walk", "claude_by_default", "embeds", "caps_known", "quick", "sized", "used")

    def __init__(self, name: str, walk: Walker, *, claude_by_default: bool = False, embeds: bool = False,
                 caps_known: bool = True, quick: QuickReader | None = None, sized: SizeReader | None = None,
                 used: UsedReader | None = None) -> None:
        if (quick is not None or sized is not None) and (embeds or not caps_known):
            raise ValueError("quick readers are for formats whose caps are known and that answer")
        self.name = name
        self.walk = walk
        self.claude_by_default = claude_by_default
        self.embeds = embeds
        self.caps_known = caps_known
        self.quick = quick
        self.sized = sized
        self.used = used

    def estimate(self, request: Mapping[str, Any], model: str | None) -> RequestEstimate:
        """Worst-case tokens of one request of this format (see `estimate_request`)."""
        return estimate_request(self, request, model)

    def __repr__(self) -> str:
        return f"RequestFormat({self.name!r})"


#: Requests of no known format: every string counted, the model's output maximum at least.
GENERIC = RequestFormat("generic", walk_generic, claude_by_default=True, caps_known=False)


def estimate_generic(kwargs: Mapping[str, Any], model: str | None) -> RequestEstimate:
    """Worst-case tokens of a request of no known format: every string in `kwargs` is counted and
    the output bound is at least `max_output_tokens(model)`. Never raises."""
    return estimate_request(GENERIC, kwargs, model)


def counted_tokens(counted: tuple[int, int, int | None, int], rules: tuple[int, int, int, int]) -> tuple[int, int]:
    """(input, output) tokens of a quick or size reader's count (`QuickReader`) under a model's
    `token_rules`: the text times the model's factor (rounded up), the fixed tokens and the
    request's frame; the output cap (the model's maximum when none is given) times the choices.
    Used by `estimate_request` and `upper_bound`; `Guard.admit_plain` writes it out (a property
    test holds it to `upper_bound`)."""
    text, fixed, cap, choices = counted
    num, den, _, most = rules
    if num != 1:
        text = (text * num + den - 1) // den
    return text + fixed + PER_REQUEST_TOKENS, (most if cap is None else cap) * choices


def upper_bound(request_format: RequestFormat, kwargs: Any, model: Any) -> tuple[int, int] | None:
    """(input, output) tokens at least those of `estimate_request` for the same request, worked
    out more cheaply, for the format's plainest requests (its `sized` reader); None for any
    other request, or without a model name. `Guard.admit_plain` reserves this bound, counted the
    same way. Never raises."""
    sized = request_format.sized
    if sized is None or type(kwargs) is not dict or type(model) is not str or not model:
        return None
    try:
        counted = sized(kwargs)
    except Exception:  # not plain after all
        return None
    if counted is None:
        return None
    return counted_tokens(counted, token_rules(model, request_format.claude_by_default))


def estimate_request(
    request_format: RequestFormat, kwargs: Mapping[str, Any], model: str | None
) -> RequestEstimate:
    """Worst-case token counts of one request, from the keyword arguments of the SDK call, by
    the rules of its format (`tollmeter.formats`, or `GENERIC`). Never raises.

    `model` is the request's model; without one, the request's `model` or `modelId`.
    """
    if type(kwargs) is not dict and not isinstance(kwargs, Mapping):
        kwargs = {}
    if type(model) is not str or not model:
        model = None
        for key in ("model", "modelId"):
            v = kwargs.get(key) if kwargs else None
            if type(v) is str and v:
                model = v
                break
    quick = request_format.quick
    if quick is not None and type(kwargs) is dict:
        try:
            counted = quick(kwargs)
        except Exception:  # walked instead, which never raises
            counted = None
        if counted is not None:
            input_tokens, output_tokens = counted_tokens(counted, token_rules(model, request_format.claude_by_default))
            return _make(input_tokens, output_tokens, 0)
    embeds = request_format.embeds
    num, den, image_tokens = _profile(model, request_format.claude_by_default)
    acc = Acc(image_tokens)
    acc.fixed = 0 if embeds else PER_REQUEST_TOKENS
    cap: int | None = None
    failed = False
    try:
        cap = request_format.walk(acc, kwargs)
    except Exception:  # never raise: whatever was counted plus a conservative allowance
        failed = True
    text = acc.text if num == 1 else (acc.text * num + den - 1) // den
    input_tokens = text + acc.fixed
    if acc.truncated:
        input_tokens += TRUNCATED_TOKENS
    if failed:
        input_tokens += ERROR_TOKENS
    if embeds:
        output = 0
    else:
        if cap is None:
            cap = max_output_tokens(model)
        elif failed or not request_format.caps_known:  # unknown semantics: never below the model's maximum
            cap = max(cap, max_output_tokens(model))
        output = cap * acc.choices + acc.extra_output
    return _make(input_tokens, output, acc.images)


def _make(
    input_tokens: int,
    output_tokens: int,
    images: int,
    _new: Any = object.__new__,
    _set_input: Any = RequestEstimate.input_tokens.__set__,  # type: ignore[attr-defined]
    _set_output: Any = RequestEstimate.output_tokens.__set__,  # type: ignore[attr-defined]
    _set_images: Any = RequestEstimate.images.__set__,  # type: ignore[attr-defined]
) -> RequestEstimate:
    """`RequestEstimate(...)` through its slot descriptors: a frozen dataclass's `__init__`
    costs ~0.8 µs here (three `object.__setattr__` calls), a sizeable part of the budget."""
    estimate = _new(RequestEstimate)
    _set_input(estimate, input_tokens)
    _set_output(estimate, output_tokens)
    _set_images(estimate, images)
    return estimate
