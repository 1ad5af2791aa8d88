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
    parameters: {
      type: 'object',
      properties: { zone: { type: 'string' } },
      required: ['zone'],
    },
  },
};

function messages(spec) {
  return [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: spec.prompt ?? 'Say hello to the SDK' },
  ];
}

function withModel(spec, body) {
  if (spec.model !== null && spec.model !== undefined) body.model = spec.model;
  return body;
}

const cases = {
  async chat(client, spec) {
    const r = await client.chat.completions.create(withModel(spec, { messages: messages(spec) }));
    return {
      id: r.id,
      object: r.object,
      model: r.model,
      content: r.choices[0].message.content,
      finish_reason: r.choices[0].finish_reason,
      usage: r.usage,
    };
  },

  async stream(client, spec) {
    const body = withModel(spec, { messages: messages(spec), stream: true });
    if (spec.include_usage) body.stream_options = { include_usage: true };
    const stream = await client.chat.completions.create(body);
    let text = '';
    let finish = null;
    let usage = null;
    let chunks = 0;
    let usageFields = 0;
    const ids = new Set();
    for await (const chunk of stream) {
      chunks += 1;
      ids.add(chunk.id);
      if ('usage' in chunk) usageFields += 1;
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text += choice.delta?.content ?? '';
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    return { text, finish_reason: finish, usage, chunks, usage_fields: usageFields,
             ids: [...ids] };
  },

  // The SDK's stream helper: events plus the reassembled final completion.
  async stream_helper(client, spec) {
    const body = withModel(spec, { messages: messages(spec) });
    if (spec.tools) body.tools = spec.parallel ? [WEATHER_TOOL, TIME_TOOL] : [WEATHER_TOOL];
    const stream = client.chat.completions.stream(body);
    const argsDone = [];
    let contentDone = null;
    stream.on('tool_calls.function.arguments.done', (e) => {
      argsDone.push({ index: e.index, name: e.name, arguments: e.arguments,
                      parsed: e.parsed_arguments ?? null });
    });
    stream.on('content.done', (e) => { contentDone = e.content; });
    const final = await stream.finalChatCompletion();
    const msg = final.choices[0].message;
    return {
      content: msg.content,
      content_done: contentDone,
      finish_reason: final.choices[0].finish_reason,
      tool_calls: (msg.tool_calls ?? []).map((t) => ({ id: t.id, type: t.type,
        name: t.function.name, arguments: t.function.arguments })),
      arguments_done: argsDone,
      model: final.model,
    };
  },

  async tools(client, spec) {
    const r = await client.chat.completions.create(withModel(spec, {
      messages: messages(spec),
      tools: spec.parallel ? [WEATHER_TOOL, TIME_TOOL] : [WEATHER_TOOL],
      tool_choice: 'auto',
    }));
    const msg = r.choices[0].message;
    return {
      content: msg.content,
      finish_reason: r.choices[0].finish_reason,
      tool_calls: (msg.tool_calls ?? []).map((t) => ({ id: t.id, type: t.type,
        name: t.function.name, arguments: t.function.arguments })),
    };
  },

  async embeddings(client, spec) {
    const body = withModel(spec, { input: spec.input ?? ['first text', 'second text'] });
    if (spec.encoding_format) body.encoding_format = spec.encoding_format;
    const r = await client.embeddings.create(body);
    return {
      object: r.object,
      model: r.model,
      vectors: r.data.map((d) => Array.from(d.embedding)),
      indexes: r.data.map((d) => d.index),
      usage: r.usage,
    };
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
  // The SDK's timeout covers the response headers only; a stalled stream must not hang
  // the test run.
  setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: { class: 'Deadline',
      message: `no result within ${spec.deadlineMs ?? 30000} ms` } }));
    process.exit(3);
  }, spec.deadlineMs ?? 30000).unref();
  const client = new OpenAI({
    apiKey: spec.apiKey ?? 'client-key-not-a-secret',
    baseURL: spec.baseURL,
    maxRetries: 0,
    timeout: spec.timeoutMs ?? 20000,
  });
  try {
    const result = await run(client, spec);
    console.log(JSON.stringify({ ok: true, result }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: describeError(e) }));
  }
}

await main();
