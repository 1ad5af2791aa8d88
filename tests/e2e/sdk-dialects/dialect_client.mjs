// Official SDKs for the dialect tests (tests/e2e/test_dialects.py).
//
// Usage: node dialect_client.mjs '<json spec>'
//   spec: {"sdk": "openai" | "azure" | "mistral", "case": <name>, ...connection, ...options}
//     openai:  {"baseURL", "apiKey"}                       (the gateway, or the Llama mock)
//     azure:   {"endpoint", "apiKey", "apiVersion", "deployment"}   (AzureOpenAI -> Azure mock)
//     mistral: {"serverURL", "apiKey"}                     (@mistralai/mistralai -> Mistral mock)
// Prints one JSON line: {"ok": true, "result": {...}} or {"ok": false, "error": {...}}.
// Retries are off so that what the test sees is what the server answered.

import OpenAI, { AzureOpenAI } from 'openai';
import { Mistral } from '@mistralai/mistralai';

const WEATHER = {
  name: 'get_weather',
  description: 'Current weather for a city.',
  parameters: {
    type: 'object',
    properties: {
      city: { type: 'string', description: 'City name' },
      unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
    },
    required: ['city', 'unit'],
  },
};
const TOOLS = [{ type: 'function', function: WEATHER }];

function messages(spec) {
  return [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: spec.prompt ?? 'Say hello to the SDK' },
  ];
}

// ---- the openai SDK (gateway, Llama host, and Azure through AzureOpenAI) ----------------

const openaiCases = {
  async chat(client, spec) {
    const r = await client.chat.completions.create({ model: spec.model, messages: messages(spec) });
    return { id: r.id, object: r.object, model: r.model, content: r.choices[0].message.content,
             finish_reason: r.choices[0].finish_reason, usage: r.usage };
  },

  async stream(client, spec) {
    const body = { model: spec.model, messages: messages(spec), stream: true };
    if (spec.include_usage) body.stream_options = { include_usage: true };
    const stream = await client.chat.completions.create(body);
    let text = '';
    let finish = null;
    let usage = null;
    let chunks = 0;
    let usageFields = 0;
    let roles = 0;
    const ids = new Set();
    const models = new Set();
    for await (const chunk of stream) {
      chunks += 1;
      ids.add(chunk.id);
      models.add(chunk.model);
      if ('usage' in chunk) usageFields += 1;
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        if (choice.delta?.role) roles += 1;
        text += choice.delta?.content ?? '';
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    return { text, finish_reason: finish, usage, chunks, usage_fields: usageFields, roles,
             ids: [...ids], models: [...models] };
  },

  // The stream helper reassembles tool-call fragments: it fails on a malformed sequence.
  async stream_tools(client, spec) {
    const stream = client.chat.completions.stream({ model: spec.model, messages: messages(spec),
                                                    tools: TOOLS });
    const argsDone = [];
    stream.on('tool_calls.function.arguments.done', (e) => {
      argsDone.push({ index: e.index, name: e.name, arguments: e.arguments });
    });
    const final = await stream.finalChatCompletion();
    const msg = final.choices[0].message;
    return {
      content: msg.content,
      finish_reason: final.choices[0].finish_reason,
      tool_calls: (msg.tool_calls ?? []).map((t) => ({ id: t.id, type: t.type,
        name: t.function.name, arguments: t.function.arguments })),
      arguments_done: argsDone,
      model: final.model,
    };
  },

  // A tool call, then the conversation continued with the tool's result.
  async tool_round_trip(client, spec) {
    const msgs = messages(spec);
    const first = await client.chat.completions.create({ model: spec.model, messages: msgs,
                                                         tools: TOOLS, tool_choice: 'required' });
    const call = first.choices[0].message.tool_calls?.[0];
    if (!call) return { first_finish: first.choices[0].finish_reason, tool_calls: [] };
    msgs.push(first.choices[0].message);
    msgs.push({ role: 'tool', tool_call_id: call.id, content: '{"temp": 21}' });
    if (spec.then_user) msgs.push({ role: 'user', content: spec.then_user });
    const second = await client.chat.completions.create({ model: spec.model, messages: msgs,
                                                          tools: TOOLS, tool_choice: 'none' });
    return {
      first_finish: first.choices[0].finish_reason,
      tool_calls: first.choices[0].message.tool_calls.map((t) => ({ id: t.id, type: t.type,
        name: t.function.name, arguments: t.function.arguments })),
      second_content: second.choices[0].message.content,
      second_finish: second.choices[0].finish_reason,
    };
  },

  async embeddings(client, spec) {
    const body = { model: spec.model, input: spec.input ?? ['first text', 'second text'] };
    if (spec.encoding_format) body.encoding_format = spec.encoding_format;
    const r = await client.embeddings.create(body);
    return { object: r.object, model: r.model, vectors: r.data.map((d) => Array.from(d.embedding)),
             indexes: r.data.map((d) => d.index), usage: r.usage };
  },
};

// ---- @mistralai/mistralai against the Mistral mock -------------------------------------

const mistralCases = {
  async chat(client, spec) {
    const r = await client.chat.complete({ model: spec.model, messages: messages(spec),
                                           randomSeed: 7, maxTokens: 64 });
    return { id: r.id, model: r.model, content: r.choices[0].message.content,
             finish_reason: r.choices[0].finishReason, usage: r.usage };
  },

  async stream(client, spec) {
    const stream = await client.chat.stream({ model: spec.model, messages: messages(spec) });
    let text = '';
    let finish = null;
    let usage = null;
    for await (const ev of stream) {
      const c = ev.data;
      if (c.usage) usage = c.usage;
      for (const choice of c.choices) {
        if (typeof choice.delta.content === 'string') text += choice.delta.content;
        if (choice.finishReason) finish = choice.finishReason;
      }
    }
    return { text, finish_reason: finish, usage };
  },

  async tool_round_trip(client, spec) {
    const msgs = messages(spec);
    const first = await client.chat.complete({ model: spec.model, messages: msgs, tools: TOOLS,
                                               toolChoice: 'any' });
    const msg = first.choices[0].message;
    const call = msg.toolCalls[0];
    msgs.push({ role: 'assistant', content: msg.content, toolCalls: msg.toolCalls });
    msgs.push({ role: 'tool', toolCallId: call.id, name: call.function.name,
                content: '{"temp": 21}' });
    if (spec.then_user) {
      msgs.push({ role: 'assistant', content: 'OK.' });
      msgs.push({ role: 'user', content: spec.then_user });
    }
    const second = await client.chat.complete({ model: spec.model, messages: msgs, tools: TOOLS,
                                                toolChoice: 'none' });
    return { first_finish: first.choices[0].finishReason,
             tool_calls: msg.toolCalls.map((t) => ({ id: t.id, name: t.function.name,
                                                     arguments: t.function.arguments })),
             second_content: second.choices[0].message.content,
             second_finish: second.choices[0].finishReason };
  },

  async embeddings(client, spec) {
    const r = await client.embeddings.create({ model: spec.model,
                                               inputs: spec.input ?? ['first text', 'second text'] });
    return { model: r.model, vectors: r.data.map((d) => d.embedding), usage: r.usage };
  },
};

function describeError(e) {
  return {
    class: e?.constructor?.name ?? typeof e,
    status: e?.status ?? e?.statusCode ?? null,
    code: e?.code ?? null,
    type: e?.type ?? null,
    param: e?.param ?? null,
    message: String(e?.message ?? e),
    body: e?.body ?? null,
  };
}

function makeClient(spec) {
  if (spec.sdk === 'azure') {
    return new AzureOpenAI({ endpoint: spec.endpoint, apiKey: spec.apiKey,
                             apiVersion: spec.apiVersion, deployment: spec.deployment,
                             maxRetries: 0, timeout: 20000 });
  }
  if (spec.sdk === 'mistral') {
    return new Mistral({ apiKey: spec.apiKey, serverURL: spec.serverURL,
                         retryConfig: { strategy: 'none' }, timeoutMs: 20000 });
  }
  return new OpenAI({ apiKey: spec.apiKey ?? 'client-key-not-a-secret', baseURL: spec.baseURL,
                      maxRetries: 0, timeout: 20000 });
}

async function main() {
  const spec = JSON.parse(process.argv[2] ?? '{}');
  const table = spec.sdk === 'mistral' ? mistralCases : openaiCases;
  const run = table[spec.case];
  if (!run) {
    console.log(JSON.stringify({ ok: false, error: { class: 'UsageError',
      message: `unknown case ${spec.sdk}/${spec.case}` } }));
    process.exitCode = 2;
    return;
  }
  setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: { class: 'Deadline',
      message: 'no result within 30000 ms' } }));
    process.exit(3);
  }, 30000).unref();
  try {
    console.log(JSON.stringify({ ok: true, result: await run(makeClient(spec), spec) }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: describeError(e) }));
  }
}

await main();
