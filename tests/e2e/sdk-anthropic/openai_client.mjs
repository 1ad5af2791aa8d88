// Drives the official OpenAI Node SDK against the gateway in front of mock_anthropic.py
// (tests/e2e/test_anthropic.py): an application written for OpenAI, talking to Claude.
//
// Usage: node openai_client.mjs '<json spec>'
//   spec: {"case": <name>, "baseURL": "http://127.0.0.1:<port>/v1", "model": "...",
//          ...case options}
// Prints one JSON line: {"ok": true, "result": {...}} or
// {"ok": false, "error": {"class", "status", "code", "type", "param", "message"}, "partial"}.
// The SDK's own retries are off (maxRetries 0): the test sees what the gateway answered.

import OpenAI from 'openai';
import { TIME_TOOL, chatSummary, chunkTally, collectChunks, describeApiError, openaiOptions,
  pick, runCase, streamHelperResult, terseChat, toolCalls, weatherTool } from '../js/clientkit.mjs';

const TOOLS = [weatherTool(true), TIME_TOOL];
// The fields of the stream tally (clientkit.collectChunks) this client reports.
const STREAM_FIELDS = ['text', 'finish_reason', 'usage', 'chunks', 'usage_fields', 'ids',
  'models', 'first_delta', 'tool_calls'];

// What the case has seen so far, reported with an error (streams that fail midway).
let tally = null;

function messages(spec) {
  return terseChat(spec.prompt ?? 'Hello Claude');
}

async function collect(stream) {
  tally = chunkTally();
  return pick(await collectChunks(stream, tally), STREAM_FIELDS);
}

const cases = {
  async chat(client, spec) {
    const body = { model: spec.model, messages: messages(spec) };
    if (spec.extra) Object.assign(body, spec.extra);
    return chatSummary(await client.chat.completions.create(body));
  },

  async stream(client, spec) {
    const body = { model: spec.model, messages: messages(spec), stream: true };
    if (spec.include_usage) body.stream_options = { include_usage: true };
    if (spec.tools) body.tools = TOOLS;
    return collect(await client.chat.completions.create(body));
  },

  async tools(client, spec) {
    const r = await client.chat.completions.create({
      model: spec.model, messages: messages(spec), tools: TOOLS,
      tool_choice: spec.tool_choice ?? 'auto', parallel_tool_calls: spec.parallel ?? true,
    });
    const msg = r.choices[0].message;
    return { content: msg.content, finish_reason: r.choices[0].finish_reason,
      tool_calls: toolCalls(msg) };
  },

  // The SDK's stream helper reassembles streamed tool calls into a final completion.
  async stream_tools(client, spec) {
    return streamHelperResult(client.chat.completions.stream({
      model: spec.model, messages: messages(spec), tools: TOOLS,
    }));
  },

  // A full tool round trip: call, run the tools locally, send the results, get the answer.
  async multi_turn(client, spec) {
    const history = messages(spec);
    const first = await client.chat.completions.create({ model: spec.model, messages: history,
      tools: TOOLS });
    const msg = first.choices[0].message;
    history.push(msg);
    for (const tc of msg.tool_calls ?? []) {
      const args = JSON.parse(tc.function.arguments);
      history.push({ role: 'tool', tool_call_id: tc.id,
        content: JSON.stringify({ tool: tc.function.name, args, temp: 21 }) });
    }
    history.push({ role: 'user', content: 'Thanks, and in Fahrenheit?' });
    const body = { model: spec.model, messages: history, tools: TOOLS };
    let second;
    if (spec.stream_second) {
      const out = await collect(await client.chat.completions.create({ ...body, stream: true }));
      second = { content: out.text, finish_reason: out.finish_reason };
    } else {
      const r = await client.chat.completions.create(body);
      second = { content: r.choices[0].message.content,
        finish_reason: r.choices[0].finish_reason };
    }
    return { first: { content: msg.content, finish_reason: first.choices[0].finish_reason,
      tool_calls: toolCalls(msg) }, second };
  },

  async image(client, spec) {
    const r = await client.chat.completions.create({ model: spec.model, messages: [
      { role: 'user', content: [
        { type: 'text', text: 'Which city is on this postcard?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${spec.png}`,
          detail: 'low' } },
        { type: 'image_url', image_url: { url: 'https://images.example.org/postcard.jpg' } },
      ] },
    ] });
    return { content: r.choices[0].message.content, finish_reason: r.choices[0].finish_reason };
  },
};

await runCase({
  cases,
  connect: (spec) => new OpenAI(openaiOptions(spec)),
  describeError: describeApiError(OpenAI.APIError),
  partial: () => tally && pick(tally, STREAM_FIELDS),
});
