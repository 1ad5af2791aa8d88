// What the e2e SDK clients (js/, sdk-anthropic/, sdk-google/, sdk-dialects/) share: the
// command line, the one JSON line they print, the tools they declare and how they summarise
// OpenAI-shaped answers.
//
// This file must import no package. Node resolves a bare import such as 'openai' from the
// node_modules of the directory tree the importing file lives in, so a package imported here
// would come from js/node_modules whichever client loaded it. The clients pass their SDK's
// objects in instead.

const WEATHER_SCHEMA = {
  type: 'object',
  properties: {
    city: { type: 'string', description: 'City name' },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
  },
  required: ['city', 'unit'],
};

export const WEATHER_NAME = 'get_weather';
export const WEATHER_DESCRIPTION = 'Current weather for a city.';

// The weather tool's JSON schema; strict adds additionalProperties: false.
export function weatherSchema(strict = false) {
  return strict ? { ...WEATHER_SCHEMA, additionalProperties: false } : WEATHER_SCHEMA;
}

export function weatherTool(strict = false) {
  return { type: 'function', function: { name: WEATHER_NAME, description: WEATHER_DESCRIPTION,
    parameters: weatherSchema(strict) } };
}

export const TIME_TOOL = {
  type: 'function',
  function: {
    name: 'get_time',
    parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] },
  },
};

export function terseChat(prompt) {
  return [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: prompt },
  ];
}

// The tool calls of an OpenAI message, flattened.
export function toolCalls(msg) {
  return (msg.tool_calls ?? []).map((t) => ({ id: t.id, type: t.type, name: t.function.name,
    arguments: t.function.arguments }));
}

export function chatSummary(r) {
  return { id: r.id, object: r.object, model: r.model, content: r.choices[0].message.content,
    finish_reason: r.choices[0].finish_reason, usage: r.usage };
}

export function embeddingSummary(r) {
  return { object: r.object, model: r.model, vectors: r.data.map((d) => Array.from(d.embedding)),
    indexes: r.data.map((d) => d.index), usage: r.usage };
}

export function pick(obj, keys) {
  return Object.fromEntries(keys.map((k) => [k, obj[k]]));
}

// What collectChunks records; filled in place, so that a caller holding it can report how far
// a stream got before it failed.
export function chunkTally() {
  return { text: '', finish_reason: null, usage: null, chunks: 0, usage_fields: 0, roles: 0,
    ids: [], models: [], first_delta: null, tool_calls: {} };
}

// Reads an OpenAI chat completion stream to its end. Each client reports the fields its
// tests read (pick).
export async function collectChunks(stream, out = chunkTally()) {
  for await (const chunk of stream) {
    out.chunks += 1;
    if (!out.ids.includes(chunk.id)) out.ids.push(chunk.id);
    if (!out.models.includes(chunk.model)) out.models.push(chunk.model);
    if ('usage' in chunk) out.usage_fields += 1;
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (out.first_delta === null) out.first_delta = choice.delta;
      if (choice.delta?.role) out.roles += 1;
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

// The openai SDK's stream helper (client.chat.completions.stream): the arguments.done events,
// then the completion it reassembled. withParsed adds each event's parsed arguments.
export async function streamHelperResult(stream, withParsed = false) {
  const argsDone = [];
  stream.on('tool_calls.function.arguments.done', (e) => {
    const done = { index: e.index, name: e.name, arguments: e.arguments };
    if (withParsed) done.parsed = e.parsed_arguments ?? null;
    argsDone.push(done);
  });
  const final = await stream.finalChatCompletion();
  const msg = final.choices[0].message;
  return { content: msg.content, finish_reason: final.choices[0].finish_reason,
    tool_calls: toolCalls(msg), arguments_done: argsDone, model: final.model };
}

// The error fields every OpenAI-style client reports.
export function errorFields(e) {
  return {
    class: e?.constructor?.name ?? typeof e,
    status: e?.status ?? null,
    code: e?.code ?? null,
    type: e?.type ?? null,
    param: e?.param ?? null,
    message: String(e?.message ?? e),
  };
}

// describeError for a client whose SDK has an API error class.
export function describeApiError(APIError) {
  return (e) => ({ ...errorFields(e), is_api_error: e instanceof APIError });
}

// Options for the openai SDK's client, retries off: the test sees what the server answered.
export function openaiOptions(spec) {
  return { apiKey: spec.apiKey ?? 'client-key-not-a-secret', baseURL: spec.baseURL,
    maxRetries: 0, timeout: spec.timeoutMs ?? 20000 };
}

function print(obj) {
  console.log(JSON.stringify(obj));
}

// Runs the case that the JSON spec in argv[2] names and prints one JSON line:
// {"ok": true, "result": ...} or {"ok": false, "error": ..., "partial": ...}.
//   cases          the case table, or a function of the spec that returns it
//   connect        spec -> the SDK client (may be async)
//   describeError  error -> the reported error object
//   partial        () -> what the case saw before it failed (left out when undefined)
//   deadlineMs     spec -> ms before the run gives up with exit status 3, or null for none:
//                  an SDK's timeout covers the response headers only, and a stalled stream
//                  must not hang the test run
//   caseName       spec -> how a usage error names the case
export async function runCase({ cases, connect, describeError, partial = () => undefined,
  deadlineMs = (spec) => spec.deadlineMs ?? 30000, caseName = (spec) => spec.case }) {
  const spec = JSON.parse(process.argv[2] ?? '{}');
  const table = typeof cases === 'function' ? cases(spec) : cases;
  const run = table[spec.case];
  if (!run) {
    print({ ok: false, error: { class: 'UsageError', message: `unknown case ${caseName(spec)}` } });
    process.exitCode = 2;
    return;
  }
  const ms = deadlineMs(spec);
  if (ms !== null) {
    setTimeout(() => {
      print({ ok: false, error: { class: 'Deadline', message: `no result within ${ms} ms` },
        partial: partial() });
      process.exit(3);
    }, ms).unref();
  }
  try {
    print({ ok: true, result: await run(await connect(spec), spec) });
  } catch (e) {
    print({ ok: false, error: describeError(e), partial: partial() });
  }
}
