"""Wire formats: one module per format an LLM API speaks, shared by every SDK that speaks it.

Each module reads that format's responses, stream chunks and usage, and estimates its requests:

- `openai_chat`: OpenAI chat completions (and legacy completions, embeddings): openai and the
  OpenAI-compatible servers behind it, groq, mistralai, Bedrock's OpenAI-style bodies.
- `openai_responses`: the OpenAI Responses API (and the input/output usage of images and audio).
- `anthropic_messages`: Anthropic Messages: anthropic (first-party, Bedrock, Vertex, Foundry
  clients) and Claude bodies of Bedrock InvokeModel.
- `converse`: Bedrock Converse and ConverseStream, and Amazon Nova's InvokeModel bodies.
- `gemini`: Google's generate_content and embed_content (google-genai, Gemini API and Vertex AI).
- `bedrock_invoke`: Bedrock InvokeModel, Bedrock's envelope around each model family's format.
- `cohere_chat`: Cohere's billed usage and chat stream events (cohere, Cohere bodies on Bedrock).

No SDK is imported here: a reader takes an SDK's parsed object or the JSON of the same payload
as a dict, through `instrument.fields`. What runs on the caller's thread (`read_response`,
stream readers) picks out a few cheap fields and hands the usage object to the background
worker (`Call.defer_usage`), where the `read_usage` functions turn it into `Usage`. Request
estimators are `limits.estimate.RequestFormat`s; an endpoint names the one it speaks.
"""
