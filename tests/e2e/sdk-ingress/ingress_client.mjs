// Clients of the gateway's ingress dialects (tests/e2e/test_responses.py, test_messages.py):
// the official openai SDK's Responses API, the Vercel AI SDK's default OpenAI provider
// (which speaks the Responses API since v5), LangChain's ChatOpenAI with useResponsesApi,
// and the official @anthropic-ai/sdk Messages API.
//
// Usage: node ingress_client.mjs '<json spec>'
//   spec: {"case": <name>, "baseURL": "...", "apiKey": "...", "model": "...", ...}
// Prints one JSON line: {"ok": true, "result": {...}} or {"ok": false, "error": {...}}.
// Every client's own retries are off: the test sees what the gateway answered.

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText, stepCountIs, tool } from 'ai';
import { ChatOpenAI } from '@langchain/openai';
import { z } from 'zod';
import { errorFields, runCase } from '../js/clientkit.mjs';

const WEATHER = {
  name: 'get_weather',
  description: 'Current weather for a city.',
  schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

function openai(spec) {
  return new OpenAI({ apiKey: spec.apiKey, baseURL: spec.baseURL, maxRetries: 0,
    timeout: 20000 });
}

function anthropic(spec) {
  return new Anthropic({ apiKey: spec.apiKey, baseURL: spec.baseURL, maxRetries: 0,
    timeout: 20000 });
}

function responseSummary(r) {
  return { id: r.id, status: r.status, output_text: r.output_text, model: r.model,
    output_types: r.output.map((o) => o.type), usage: r.usage, store: r.store };
}

function messageSummary(m) {
  return { id: m.id, stop_reason: m.stop_reason,
    text: m.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
    block_types: m.content.map((b) => b.type),
    tool_uses: m.content.filter((b) => b.type === 'tool_use')
      .map((b) => ({ id: b.id, name: b.name, input: b.input })),
    usage: m.usage };
}

const cases = {
  // -- openai: Responses API ----------------------------------------------------------

  async responses_create(spec) {
    return responseSummary(await openai(spec).responses.create({
      model: spec.model, input: spec.prompt ?? 'Hello', instructions: 'Be terse.' }));
  },

  async responses_stream(spec) {
    const stream = openai(spec).responses.stream({ model: spec.model,
      input: spec.prompt ?? 'Hello' });
    const deltas = [];
    const seq = [];
    stream.on('event', (e) => seq.push(e.sequence_number));
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    return { deltas, sequence: seq, final: responseSummary(final) };
  },

  async responses_tools(spec) {
    const client = openai(spec);
    const tools = [{ type: 'function', name: WEATHER.name, description: WEATHER.description,
      parameters: WEATHER.schema, strict: false }];
    const input = [{ role: 'user', content: spec.prompt ?? 'Weather in Lisbon?' }];
    const first = await client.responses.create({ model: spec.model, input, tools });
    const calls = first.output.filter((o) => o.type === 'function_call');
    const second = await client.responses.create({ model: spec.model, tools,
      tool_choice: 'none',
      input: [...input, ...calls,
        ...calls.map((c) => ({ type: 'function_call_output', call_id: c.call_id,
          output: '{"temp":21}' }))] });
    return { first: responseSummary(first),
      calls: calls.map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) })),
      second: responseSummary(second) };
  },

  async responses_structured(spec) {
    const r = await openai(spec).responses.create({ model: spec.model,
      input: 'Answer in JSON', text: { format: { type: 'json_schema', name: 'answer',
        strict: true, schema: { type: 'object', properties: { answer: { type: 'string' } },
          required: ['answer'], additionalProperties: false } } } });
    return responseSummary(r);
  },

  async responses_previous(spec) {
    const client = openai(spec);
    const first = await client.responses.create({ model: spec.model, store: true,
      input: spec.prompt ?? 'Remember the word tangerine.' });
    const second = await client.responses.create({ model: spec.model,
      previous_response_id: first.id, input: 'What was the word?' });
    return { first: responseSummary(first), second: responseSummary(second) };
  },

  // -- Vercel AI SDK (default provider: Responses API) ----------------------------------

  async ai_generate(spec) {
    const provider = createOpenAI({ apiKey: spec.apiKey, baseURL: spec.baseURL });
    const r = await generateText({ model: provider(spec.model), prompt: spec.prompt ?? 'Hi',
      maxRetries: 0 });
    return { text: r.text, finishReason: r.finishReason, usage: r.usage };
  },

  async ai_stream(spec) {
    const provider = createOpenAI({ apiKey: spec.apiKey, baseURL: spec.baseURL });
    const errors = [];
    const r = streamText({ model: provider(spec.model), prompt: spec.prompt ?? 'Hi',
      maxRetries: 0, onError: ({ error }) => errors.push(String(error?.message ?? error)) });
    let text = '';
    for await (const piece of r.textStream) text += piece;
    return { text, errors, finishReason: await r.finishReason };
  },

  async ai_tool(spec) {
    const provider = createOpenAI({ apiKey: spec.apiKey, baseURL: spec.baseURL });
    const seen = [];
    const r = await generateText({
      model: provider(spec.model), prompt: spec.prompt ?? 'Weather in Lisbon?', maxRetries: 0,
      tools: { get_weather: tool({ description: WEATHER.description,
        inputSchema: z.object({ city: z.string() }),
        execute: async ({ city }) => { seen.push(city); return { temp: 21 }; } }) },
      stopWhen: stepCountIs(3),
      // store true (the SDK's default) makes later steps refer to earlier output items by
      // id (item_reference): only a gateway with a response store can resolve those.
      providerOptions: { openai: { store: spec.store ?? true } },
    });
    return { text: r.text, steps: r.steps.length, executed: seen,
      toolCalls: r.steps.flatMap((s) => s.toolCalls.map((c) => c.toolName)) };
  },

  // -- LangChain ----------------------------------------------------------------------

  async langchain(spec) {
    const llm = new ChatOpenAI({ model: spec.model, apiKey: spec.apiKey, maxRetries: 0,
      useResponsesApi: true, configuration: { baseURL: spec.baseURL } });
    const m = await llm.invoke(spec.prompt ?? 'Hi');
    return { text: typeof m.content === 'string' ? m.content
      : m.content.map((c) => c.text ?? '').join(''), usage: m.usage_metadata ?? null };
  },

  // -- @anthropic-ai/sdk: Messages API ------------------------------------------------

  async messages_create(spec) {
    return messageSummary(await anthropic(spec).messages.create({ model: spec.model,
      max_tokens: 200, system: 'Be terse.',
      messages: [{ role: 'user', content: spec.prompt ?? 'Hello' }] }));
  },

  async messages_stream(spec) {
    const stream = anthropic(spec).messages.stream({ model: spec.model, max_tokens: 200,
      messages: [{ role: 'user', content: spec.prompt ?? 'Hello' }] });
    const deltas = [];
    stream.on('text', (t) => deltas.push(t));
    const final = await stream.finalMessage();
    return { deltas, final: messageSummary(final) };
  },

  async messages_tools(spec) {
    const client = anthropic(spec);
    const tools = [{ name: WEATHER.name, description: WEATHER.description,
      input_schema: WEATHER.schema }];
    const messages = [{ role: 'user', content: spec.prompt ?? 'Weather in Lisbon?' }];
    const first = await client.messages.create({ model: spec.model, max_tokens: 200, tools,
      tool_choice: { type: 'tool', name: WEATHER.name }, messages });
    const uses = first.content.filter((b) => b.type === 'tool_use');
    const second = await client.messages.create({ model: spec.model, max_tokens: 200, tools,
      tool_choice: { type: 'none' }, messages: [...messages,
        { role: 'assistant', content: first.content },
        { role: 'user', content: uses.map((u) => ({ type: 'tool_result', tool_use_id: u.id,
          content: '{"temp":21}' })) }] });
    return { first: messageSummary(first), second: messageSummary(second) };
  },

  async messages_image(spec) {
    return messageSummary(await anthropic(spec).messages.create({ model: spec.model,
      max_tokens: 200, messages: [{ role: 'user', content: [
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: spec.png } },
        { type: 'text', text: 'What is this?' }] }] }));
  },

  async messages_count(spec) {
    return await anthropic(spec).messages.countTokens({ model: spec.model,
      messages: [{ role: 'user', content: spec.prompt ?? 'Count these words' }] });
  },
};

await runCase({
  cases,
  connect: (spec) => spec,
  describeError: (e) => ({ ...errorFields(e),
    type: e?.error?.error?.type ?? e?.error?.type ?? e?.type ?? null }),
});
