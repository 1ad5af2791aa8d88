// Drives Google's official @google/genai SDK against tests/e2e/mock_google.py, so that the
// mock is proven to accept what the real client sends and to answer what it understands.
//
// Usage: node genai_client.mjs '<json spec>'
//   spec: {"case": <name>, "baseUrl": "http://127.0.0.1:<port>", "model": "...",
//          "apiKey": "..."                        (AI Studio), or
//          "vertex": {"project", "location", "tokenUri", "keyFile", "clientEmail", "keyId"}}
// Prints one JSON line: {"ok": true, "result": {...}} or {"ok": false, "error": {...}}.
// The Vertex AI case signs its own RS256 JWT with the test key and exchanges it at the
// mock token endpoint, then hands the token to the SDK through google-auth-library.

import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { GoogleGenAI } from '@google/genai';
import { OAuth2Client } from 'google-auth-library';
import { errorFields, pick, runCase } from '../js/clientkit.mjs';

const WEATHER = {
  name: 'get_weather',
  description: 'Current weather for a city.',
  parametersJsonSchema: {
    type: 'object',
    properties: {
      city: { type: 'string' },
      unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
    },
    required: ['city', 'unit'],
  },
};

const b64url = (buf) => Buffer.from(buf).toString('base64url');

async function vertexToken(v) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: v.keyId }));
  const claims = b64url(JSON.stringify({
    iss: v.clientEmail, scope: 'https://www.googleapis.com/auth/cloud-platform',
    aud: v.tokenUri, iat: now, exp: now + 3600,
  }));
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${claims}`);
  const jwt = `${header}.${claims}.${b64url(signer.sign(readFileSync(v.keyFile)))}`;
  const r = await fetch(v.tokenUri, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: jwt,
    }),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(`token endpoint: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

async function client(spec) {
  if (!spec.vertex) {
    return new GoogleGenAI({
      apiKey: spec.apiKey,
      httpOptions: { baseUrl: spec.baseUrl, apiVersion: 'v1beta' },
    });
  }
  const tok = await vertexToken(spec.vertex);
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: tok.access_token,
    expiry_date: Date.now() + tok.expires_in * 1000 });
  return new GoogleGenAI({
    vertexai: true,
    project: spec.vertex.project,
    location: spec.vertex.location,
    httpOptions: { baseUrl: spec.baseUrl, apiVersion: 'v1' },
    googleAuthOptions: { authClient: auth },
  });
}

const cases = {
  async generate(ai, spec) {
    const r = await ai.models.generateContent({
      model: spec.model,
      contents: spec.prompt ?? 'Hello there',
      config: { systemInstruction: 'Be terse.', temperature: 0.2, maxOutputTokens: 64,
        stopSequences: ['###'] },
    });
    return { text: r.text, finishReason: r.candidates[0].finishReason,
      usage: r.usageMetadata, modelVersion: r.modelVersion, responseId: r.responseId };
  },

  async image(ai, spec) {
    const r = await ai.models.generateContent({
      model: spec.model,
      contents: [{ role: 'user', parts: [
        { text: 'What is on this postcard?' },
        { inlineData: { mimeType: 'image/png', data: spec.image } },
      ] }],
    });
    return { text: r.text };
  },

  async stream(ai, spec) {
    const s = await ai.models.generateContentStream({
      model: spec.model, contents: spec.prompt ?? 'stream these words please',
    });
    let text = '';
    let chunks = 0;
    let finish = null;
    let usage = null;
    for await (const c of s) {
      chunks += 1;
      text += c.text ?? '';
      finish = c.candidates?.[0]?.finishReason ?? finish;
      usage = c.usageMetadata ?? usage;
    }
    return { text, chunks, finishReason: finish, usage };
  },

  // Function calling over two turns: the SDK sends the model turn back as it got it
  // (thought signature included) followed by the function response.
  async function_calling(ai, spec) {
    const config = { tools: [{ functionDeclarations: [WEATHER] }],
      toolConfig: { functionCallingConfig: { mode: 'AUTO' } } };
    const user = { role: 'user', parts: [{ text: 'What is the weather in Lisbon?' }] };
    const first = await ai.models.generateContent({ model: spec.model, contents: [user], config });
    const calls = first.functionCalls ?? [];
    const modelTurn = first.candidates[0].content;
    const second = await ai.models.generateContent({
      model: spec.model,
      config,
      contents: [user, modelTurn, { role: 'user', parts: calls.map((c) => ({
        functionResponse: { name: c.name, response: { temp: 21 }, ...(c.id ? { id: c.id } : {}) },
      })) }],
    });
    return {
      calls: calls.map((c) => ({ name: c.name, args: c.args })),
      signature: modelTurn.parts[0].thoughtSignature ?? null,
      finishReason: first.candidates[0].finishReason,
      text: second.text,
    };
  },

  async embed(ai, spec) {
    const r = await ai.models.embedContent({
      model: spec.model,
      contents: spec.input ?? ['first text', 'second text'],
      config: spec.dims ? { outputDimensionality: spec.dims } : undefined,
    });
    return { vectors: r.embeddings.map((e) => e.values), stats: r.embeddings.map(
      (e) => e.statistics ?? null) };
  },

  async error(ai, spec) {
    await ai.models.generateContent({ model: spec.model, contents: 'Hello' });
    return { unexpected: 'no error' };
  },
};

// No deadline of its own: test_google.py bounds the run with its subprocess timeout.
await runCase({
  cases,
  connect: client,
  describeError: (e) => pick(errorFields(e), ['class', 'status', 'message']),
  deadlineMs: () => null,
});
