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
import { chatSummary, collectChunks, embeddingSummary, errorFields, openaiOptions, pick, runCase,
  streamHelperResult, terseChat, toolCalls, weatherTool } from '../js/clientkit.mjs';

const TOOLS = [weatherTool()];
// The fields of the stream tally (clientkit.collectChunks) the openai stream case reports.
const STREAM_FIELDS = ['text', 'finish_reason', 'usage', 'chunks', 'usage_fields', 'roles', 'ids',
  'models'];

function messages(spec) {
  return terseChat(spec.prompt ?? 'Say hello to the SDK');
}

// ---- the openai SDK (gateway, Llama host, and Azure through AzureOpenAI) ----------------

const openaiCases = {
  async chat(client, spec) {
    return chatSummary(await client.chat.completions.create({ model: spec.model,
      messages: messages(spec) }));
  },

  async stream(client, spec) {
    const body = { model: spec.model, messages: messages(spec), stream: true };
    if (spec.include_usage) body.stream_options = { include_usage: true };
    return pick(await collectChunks(await client.chat.completions.create(body)), STREAM_FIELDS);
  },

  // The stream helper reassembles tool-call fragments: it fails on a malformed sequence.
  async stream_tools(client, spec) {
    return streamHelperResult(client.chat.completions.stream({ model: spec.model,
      messages: messages(spec), tools: TOOLS }));
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
      tool_calls: toolCalls(first.choices[0].message),
      second_content: second.choices[0].message.content,
      second_finish: second.choices[0].finish_reason,
    };
  },

  async embeddings(client, spec) {
    const body = { model: spec.model, input: spec.input ?? ['first text', 'second text'] };
    if (spec.encoding_format) body.encoding_format = spec.encoding_format;
    return embeddingSummary(await client.embeddings.create(body));
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
  return new OpenAI(openaiOptions(spec));
}

await runCase({
  cases: (spec) => (spec.sdk === 'mistral' ? mistralCases : openaiCases),
  connect: makeClient,
  describeError: (e) => ({ ...errorFields(e), status: e?.status ?? e?.statusCode ?? null,
    body: e?.body ?? null }),
  deadlineMs: () => 30000,
  caseName: (spec) => `${spec.sdk}/${spec.case}`,
});
