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

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city.',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', description: 'City name' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};

const TIME_TOOL = {
  type: 'function',
  function: {
    name: 'get_time',
    parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] },
  },
};

// What the case has seen so far, reported with an error (streams that fail midway).
let partial = null;

function messages(spec) {
  return [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: spec.prompt ?? 'Hello Claude' },
  ];
}

function calls(msg) {
  return (msg.tool_calls ?? []).map((t) => ({ id: t.id, type: t.type, name: t.function.name,
    arguments: t.function.arguments }));
}

async function collect(stream) {
  const out = { text: '', finish_reason: null, usage: null, chunks: 0, usage_fields: 0,
    ids: [], models: [], first_delta: null, tool_calls: {} };
  partial = out;
  for await (const chunk of stream) {
    out.chunks += 1;
    if (!out.ids.includes(chunk.id)) out.ids.push(chunk.id);
    if (!out.models.includes(chunk.model)) out.models.push(chunk.model);
    if ('usage' in chunk) out.usage_fields += 1;
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (out.first_delta === null) out.first_delta = choice.delta;
      out.text += choice.delta?.content ?? '';
      for (const tc of choice.delta?.tool_calls ?? []) {
        const cur = out.tool_calls[tc.index] ??= { id: null, name: null, arguments: '',
          fragments: 0 };
        if (tc.id) cur.id = tc.id;
        if (tc.function?.name) cur.name = tc.function.name;
        cur.arguments += tc.function?.arguments ?? '';
        cur.fragments += 1;
      }
      if (choice.finish_reason) out.finish_reason = choice.finish_reason;
    }
  }
  return out;
}

const cases = {
  async chat(client, spec) {
    const body = { model: spec.model, messages: messages(spec) };
    if (spec.extra) Object.assign(body, spec.extra);
    const r = await client.chat.completions.create(body);
    return { id: r.id, object: r.object, model: r.model, content: r.choices[0].message.content,
      finish_reason: r.choices[0].finish_reason, usage: r.usage };
  },

  async stream(client, spec) {
    const body = { model: spec.model, messages: messages(spec), stream: true };
    if (spec.include_usage) body.stream_options = { include_usage: true };
    if (spec.tools) body.tools = [WEATHER_TOOL, TIME_TOOL];
    return collect(await client.chat.completions.create(body));
  },

  async tools(client, spec) {
    const r = await client.chat.completions.create({
      model: spec.model, messages: messages(spec), tools: [WEATHER_TOOL, TIME_TOOL],
      tool_choice: spec.tool_choice ?? 'auto', parallel_tool_calls: spec.parallel ?? true,
    });
    const msg = r.choices[0].message;
    return { content: msg.content, finish_reason: r.choices[0].finish_reason,
      tool_calls: calls(msg) };
  },

  // The SDK's stream helper reassembles streamed tool calls into a final completion.
  async stream_tools(client, spec) {
    const stream = client.chat.completions.stream({
      model: spec.model, messages: messages(spec), tools: [WEATHER_TOOL, TIME_TOOL],
    });
    const argsDone = [];
    stream.on('tool_calls.function.arguments.done', (e) => {
      argsDone.push({ index: e.index, name: e.name, arguments: e.arguments });
    });
    const final = await stream.finalChatCompletion();
    const msg = final.choices[0].message;
    return { content: msg.content, finish_reason: final.choices[0].finish_reason,
      tool_calls: calls(msg), arguments_done: argsDone, model: final.model };
  },

  // A full tool round trip: call, run the tools locally, send the results, get the answer.
  async multi_turn(client, spec) {
    const history = messages(spec);
    const tools = [WEATHER_TOOL, TIME_TOOL];
    const first = await client.chat.completions.create({ model: spec.model, messages: history,
      tools });
    const msg = first.choices[0].message;
    history.push(msg);
    for (const tc of msg.tool_calls ?? []) {
      const args = JSON.parse(tc.function.arguments);
      history.push({ role: 'tool', tool_call_id: tc.id,
        content: JSON.stringify({ tool: tc.function.name, args, temp: 21 }) });
    }
    history.push({ role: 'user', content: 'Thanks, and in Fahrenheit?' });
    const body = { model: spec.model, messages: history, tools };
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
      tool_calls: calls(msg) }, second };
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

function describeError(e) {
  return {
    class: e?.constructor?.name ?? typeof e,
    is_api_error: e instanceof OpenAI.APIError,
    status: e?.status ?? null,
    code: e?.code ?? null,
    type: e?.type ?? null,
    param: e?.param ?? null,
    message: String(e?.message ?? e),
  };
}

async function main() {
  const spec = JSON.parse(process.argv[2] ?? '{}');
  const run = cases[spec.case];
  if (!run) {
    console.log(JSON.stringify({ ok: false, error: { class: 'UsageError',
      message: `unknown case ${spec.case}` } }));
    process.exitCode = 2;
    return;
  }
  setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: { class: 'Deadline',
      message: `no result within ${spec.deadlineMs ?? 30000} ms` }, partial }));
    process.exit(3);
  }, spec.deadlineMs ?? 30000).unref();
  const client = new OpenAI({
    apiKey: spec.apiKey ?? 'client-key-not-a-secret',
    baseURL: spec.baseURL,
    maxRetries: 0,
    timeout: spec.timeoutMs ?? 20000,
  });
  try {
    console.log(JSON.stringify({ ok: true, result: await run(client, spec) }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: describeError(e), partial }));
  }
}

await main();
