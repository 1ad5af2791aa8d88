// Drives the official Anthropic Node SDK against tests/e2e/mock_anthropic.py, so that the
// suite knows the mock speaks the real Messages API (tests/e2e/test_anthropic.py).
//
// Usage: node anthropic_client.mjs '<json spec>'
//   spec: {"case": <name>, "baseURL": "http://127.0.0.1:<port>", "apiKey": "...",
//          "model": "...", "version": "2023-06-01" (optional), ...case options}
// Prints one JSON line: {"ok": true, "result": {...}} or
// {"ok": false, "error": {"class", "status", "type", "message"}}.
// The SDK's own retries are off (maxRetries 0): the test sees what the server answered.

import Anthropic from '@anthropic-ai/sdk';
import { WEATHER_DESCRIPTION, WEATHER_NAME, errorFields, pick, runCase, weatherSchema }
  from '../js/clientkit.mjs';

const WEATHER_TOOL = { name: WEATHER_NAME, description: WEATHER_DESCRIPTION,
  input_schema: weatherSchema() };

function summary(msg) {
  return {
    id: msg.id,
    type: msg.type,
    role: msg.role,
    model: msg.model,
    stop_reason: msg.stop_reason,
    stop_sequence: msg.stop_sequence ?? null,
    text: msg.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
    tool_uses: msg.content.filter((b) => b.type === 'tool_use')
      .map((b) => ({ id: b.id, name: b.name, input: b.input })),
    block_types: msg.content.map((b) => b.type),
    usage: msg.usage,
  };
}

function base(spec, extra) {
  return {
    model: spec.model,
    max_tokens: spec.max_tokens ?? 256,
    system: 'You are terse.',
    messages: [{ role: 'user', content: spec.prompt ?? 'Hello Claude' }],
    ...extra,
  };
}

const cases = {
  async create(client, spec) {
    const extra = {};
    if (spec.stop_sequences) extra.stop_sequences = spec.stop_sequences;
    return summary(await client.messages.create(base(spec, extra)));
  },

  // messages.stream: text events as they come, then the accumulated final message.
  async stream(client, spec) {
    const stream = client.messages.stream(base(spec, {}));
    const deltas = [];
    stream.on('text', (t) => deltas.push(t));
    const final = await stream.finalMessage();
    return { deltas, final: summary(final) };
  },

  // Tool use, both turns: the model calls the tool, the result goes back, the model answers.
  async tools(client, spec) {
    const first = await client.messages.create(base(spec, {
      tools: [WEATHER_TOOL],
      tool_choice: { type: 'auto', disable_parallel_tool_use: true },
    }));
    const uses = first.content.filter((b) => b.type === 'tool_use');
    const second = await client.messages.create(base(spec, {
      tools: [WEATHER_TOOL],
      messages: [
        { role: 'user', content: spec.prompt ?? 'Weather in Lisbon?' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: uses.map((u) => ({
          type: 'tool_result', tool_use_id: u.id, content: '{"temp":21}' })) },
      ],
    }));
    return { first: summary(first), second: summary(second) };
  },

  // Streamed tool use: input_json_delta fragments reassembled by the SDK.
  async stream_tools(client, spec) {
    const stream = client.messages.stream(base(spec, {
      tools: [WEATHER_TOOL], tool_choice: { type: 'tool', name: 'get_weather' },
    }));
    const jsonDeltas = [];
    stream.on('inputJson', (partial) => jsonDeltas.push(partial));
    const final = await stream.finalMessage();
    return { json_deltas: jsonDeltas, final: summary(final) };
  },

  async image(client, spec) {
    const msg = await client.messages.create(base(spec, {
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'What is this?' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: spec.png } },
        { type: 'image', source: { type: 'url', url: 'https://images.example.org/cat.png' } },
      ] }],
    }));
    return summary(msg);
  },

  // A request the API refuses: roles that do not alternate, or a raw body.
  async invalid(client, spec) {
    return summary(await client.messages.create(spec.body));
  },
};

await runCase({
  cases,
  connect: (spec) => new Anthropic({
    apiKey: spec.apiKey,
    baseURL: spec.baseURL,
    maxRetries: 0,
    timeout: spec.timeoutMs ?? 20000,
    defaultHeaders: spec.version ? { 'anthropic-version': spec.version } : undefined,
  }),
  describeError: (e) => ({ ...pick(errorFields(e), ['class', 'status', 'message']),
    is_api_error: e instanceof Anthropic.APIError,
    type: e?.error?.error?.type ?? e?.type ?? null }),
});
