// Drives the official OpenAI Node SDK for the e2e suite (tests/e2e/test_sdk.py).
//
// Usage: node sdk_client.mjs '<json spec>'
//   spec: {"case": <name>, "baseURL": "http://127.0.0.1:<port>/v1", "apiKey": "...",
//          "model": "...", ...case options}
// Prints one JSON line: {"ok": true, "result": {...}} or
// {"ok": false, "error": {"class", "status", "code", "type", "param", "message"}}.
// The SDK's own retries are off (maxRetries 0) so that what the test sees is what the
// server answered.

import OpenAI from 'openai';
import { TIME_TOOL, chatSummary, collectChunks, describeApiError, embeddingSummary,
  openaiOptions, pick, runCase, streamHelperResult, terseChat, toolCalls, weatherTool }
  from './clientkit.mjs';

const WEATHER_TOOL = weatherTool(true);

function messages(spec) {
  return terseChat(spec.prompt ?? 'Say hello to the SDK');
}

function withModel(spec, body) {
  if (spec.model !== null && spec.model !== undefined) body.model = spec.model;
  return body;
}

// The stream case reports these fields of the tally (clientkit.collectChunks).
const STREAM_FIELDS = ['text', 'finish_reason', 'usage', 'chunks', 'usage_fields', 'ids'];

const cases = {
  async chat(client, spec) {
    return chatSummary(await client.chat.completions.create(withModel(spec,
      { messages: messages(spec) })));
  },

  async stream(client, spec) {
    const body = withModel(spec, { messages: messages(spec), stream: true });
    if (spec.include_usage) body.stream_options = { include_usage: true };
    return pick(await collectChunks(await client.chat.completions.create(body)), STREAM_FIELDS);
  },

  // The SDK's stream helper: events plus the reassembled final completion.
  async stream_helper(client, spec) {
    const body = withModel(spec, { messages: messages(spec) });
    if (spec.tools) body.tools = spec.parallel ? [WEATHER_TOOL, TIME_TOOL] : [WEATHER_TOOL];
    const stream = client.chat.completions.stream(body);
    let contentDone = null;
    stream.on('content.done', (e) => { contentDone = e.content; });
    const result = await streamHelperResult(stream, true);
    return { ...result, content_done: contentDone };
  },

  async tools(client, spec) {
    const r = await client.chat.completions.create(withModel(spec, {
      messages: messages(spec),
      tools: spec.parallel ? [WEATHER_TOOL, TIME_TOOL] : [WEATHER_TOOL],
      tool_choice: 'auto',
    }));
    const msg = r.choices[0].message;
    return { content: msg.content, finish_reason: r.choices[0].finish_reason,
      tool_calls: toolCalls(msg) };
  },

  async embeddings(client, spec) {
    const body = withModel(spec, { input: spec.input ?? ['first text', 'second text'] });
    if (spec.encoding_format) body.encoding_format = spec.encoding_format;
    return embeddingSummary(await client.embeddings.create(body));
  },

  async models(client, spec) {
    const ids = [];
    for await (const m of client.models.list()) ids.push({ id: m.id, object: m.object,
      owned_by: m.owned_by, created: m.created });
    let one = null;
    if (spec.retrieve) {
      const m = await client.models.retrieve(spec.retrieve);
      one = { id: m.id, object: m.object };
    }
    return { models: ids, retrieved: one };
  },

  async retrieve_model(client, spec) {
    const m = await client.models.retrieve(spec.retrieve);
    return { id: m.id, object: m.object };
  },
};

await runCase({
  cases,
  connect: (spec) => new OpenAI(openaiOptions(spec)),
  describeError: describeApiError(OpenAI.APIError),
});
