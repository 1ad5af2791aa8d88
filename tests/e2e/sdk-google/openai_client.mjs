// Drives the official OpenAI Node SDK against mod_llmgw in front of a google backend
// (tests/e2e/test_google.py): chat, streaming, tool calls over two turns (the tool-call
// ids carry Gemini's thought signatures), images, embeddings.
//
// Usage: node openai_client.mjs '<json spec>'
//   spec: {"case": <name>, "baseURL": "http://127.0.0.1:<port>/v1", "model": "...", ...}
// Prints one JSON line: {"ok": true, "result": {...}} or
// {"ok": false, "error": {"class", "status", "code", "type", "param", "message"}}.
// The SDK's own retries are off so that what the test sees is what the gateway answered.

import OpenAI from 'openai';
import { TIME_TOOL, collectChunks, embeddingSummary, errorFields, pick, runCase, toolCalls,
  weatherTool } from '../js/clientkit.mjs';

const WEATHER_TOOL = weatherTool(true);
// The fields of the stream tally (clientkit.collectChunks) the stream case reports.
const STREAM_FIELDS = ['text', 'finish_reason', 'usage', 'chunks', 'usage_fields', 'ids'];

// The tool results an application would send back, one per call, in call order.
const results = (calls) => calls.map((t) => ({
  role: 'tool', tool_call_id: t.id,
  content: JSON.stringify({ tool: t.function.name, temp: 21 }),
}));

const cases = {
  async chat(client, spec) {
    const r = await client.chat.completions.create({
      model: spec.model,
      messages: [{ role: 'system', content: 'Be terse.' },
        { role: 'user', content: spec.prompt ?? 'Hello Gemini' }],
      temperature: 0.3, max_tokens: 100,
    });
    return { id: r.id, model: r.model, content: r.choices[0].message.content,
      finish_reason: r.choices[0].finish_reason, usage: r.usage };
  },

  async stream(client, spec) {
    const body = { model: spec.model, stream: true,
      messages: [{ role: 'user', content: spec.prompt ?? 'stream some words' }] };
    if (spec.include_usage) body.stream_options = { include_usage: true };
    return pick(await collectChunks(await client.chat.completions.create(body)), STREAM_FIELDS);
  },

  // Tools over two turns, non-streaming: call, send results back, final answer.
  async tools_round_trip(client, spec) {
    const tools = spec.parallel ? [WEATHER_TOOL, TIME_TOOL] : [WEATHER_TOOL];
    const messages = [{ role: 'user', content: spec.prompt ?? 'What is the weather in Lisbon?' }];
    const first = await client.chat.completions.create({ model: spec.model, messages, tools,
      tool_choice: 'auto' });
    const msg = first.choices[0].message;
    messages.push(msg, ...results(msg.tool_calls ?? []));
    const second = await client.chat.completions.create({ model: spec.model, messages, tools });
    return { finish_reason: first.choices[0].finish_reason, tool_calls: toolCalls(msg),
      final: second.choices[0].message.content,
      final_finish_reason: second.choices[0].finish_reason };
  },

  // Tools over two turns with the SDK's stream helper: the streamed calls are
  // reassembled by the SDK and sent back as they came.
  async stream_tools_round_trip(client, spec) {
    const tools = spec.parallel ? [WEATHER_TOOL, TIME_TOOL] : [WEATHER_TOOL];
    const messages = [{ role: 'user', content: spec.prompt ?? 'What is the weather in Lisbon?' }];
    const s = client.chat.completions.stream({ model: spec.model, messages, tools,
      stream_options: { include_usage: true } });
    const argsDone = [];
    s.on('tool_calls.function.arguments.done', (e) => argsDone.push({ name: e.name,
      arguments: e.arguments }));
    const first = await s.finalChatCompletion();
    const msg = first.choices[0].message;
    messages.push({ role: 'assistant', content: msg.content ?? null,
      tool_calls: msg.tool_calls }, ...results(msg.tool_calls ?? []));
    const s2 = client.chat.completions.stream({ model: spec.model, messages, tools });
    const second = await s2.finalChatCompletion();
    return { finish_reason: first.choices[0].finish_reason, tool_calls: toolCalls(msg),
      arguments_done: argsDone, usage: first.usage ?? null,
      final: second.choices[0].message.content,
      final_finish_reason: second.choices[0].finish_reason };
  },

  async image(client, spec) {
    const r = await client.chat.completions.create({
      model: spec.model,
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'Which city is on this postcard?' },
        { type: 'image_url', image_url: { url: spec.url, detail: 'low' } },
      ] }],
    });
    return { content: r.choices[0].message.content };
  },

  async embeddings(client, spec) {
    const body = { model: spec.model, input: spec.input ?? ['first text', 'second text'] };
    if (spec.encoding_format) body.encoding_format = spec.encoding_format;
    if (spec.dimensions) body.dimensions = spec.dimensions;
    return embeddingSummary(await client.embeddings.create(body));
  },
};

// No deadline of its own: test_google.py bounds the run with its subprocess timeout.
await runCase({
  cases,
  connect: (spec) => new OpenAI({ baseURL: spec.baseURL, apiKey: spec.apiKey ?? 'client-key',
    maxRetries: 0, timeout: 30000 }),
  describeError: errorFields,
  deadlineMs: () => null,
});
