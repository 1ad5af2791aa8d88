"""A scriptable mock of Gemini on AI Studio and on Vertex AI, plus an OAuth2 token endpoint.

Paths (providers.md 6.1):
  AI Studio  /v1beta/models/<model>:<method>            (also /v1)      x-goog-api-key
  Vertex AI  /v1/projects/<p>/locations/<l>/publishers/google/models/<model>:<method>
             (also /v1beta1)                                             Bearer token
  methods    generateContent, streamGenerateContent (?alt=sse: SSE; without: a JSON
             array, as Google does), embedContent, batchEmbedContents (AI Studio),
             predict (Vertex)
  token      POST /token  (JWT bearer grant, RFC 7523)

It validates the way Google does, so that a translation the real API would reject
fails here too: the key or token; the model path; camelCase fields with unknown
names refused; `contents` that start with the user and alternate user/model; every
part with exactly one data member of the right shape; functionCall parts only in
model turns and functionResponse parts only in the user turn right after them, as
many as there were calls, in the same order; toolConfig naming declared functions;
generationConfig ranges; and, for gemini-3 models, thought signatures on the first
function call of each model turn of the current turn (the mock issues signatures
and recognises its own, or Google's documented "skip" sentinel).

The token endpoint checks the JWT the way Google does (RS256 signature with the
public key of the test key pair, iss, aud, scope, iat/exp) with the `openssl` CLI,
and hands out tokens that live `token_lifetime` seconds; the Vertex paths accept
only live tokens it issued, so refresh can be exercised with short lifetimes.
`token_outage` (an HTTP status) makes it answer every exchange with that status, as
an endpoint that is down would; every exchange is recorded in `token_requests`.

Answers: text echoes the last user text ("echo: ..."), an image part is
mentioned; declared tools are called when the user text asks for weather/time or
the mode is ANY; after function responses the "model" reports them ("result: ...").
Streams split text into words, one SSE event each (CRLF line ends, as observed),
with no terminator. Faults (mock_openai.Fault) script errors, pacing and cuts;
`Fault.body` with status 200 replaces a non-streamed answer, and `Fault.chunks`
given as dicts replace the events of a stream.
"""

import base64
import json
import os
import re
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import zlib

from mock_openai import Fault, MockServer, _ClientGone
from mockkit import sample_arguments, serve_until_interrupted

__all__ = ["CLIENT_EMAIL", "DEFAULT_API_KEY", "Fault", "GoogleError", "KEY_ID", "MockGemini",
           "SKIP_SIGNATURE", "ServiceAccount", "decode_base64_embedding", "embedding_for",
           "google_error", "retry_info_body"]

DEFAULT_API_KEY = "AIza-test-SECRET-0123456789abcdef"
CLIENT_EMAIL = "gateway@acme-test.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef0123456789abcdef01234567"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
SKIP_SIGNATURE = "skip_thought_signature_validator"

_MODEL_PATH = re.compile(r"^/(v1beta|v1)/models/([A-Za-z0-9._@-]+):([A-Za-z]+)$")
_VERTEX_PATH = re.compile(r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/google/"
                          r"models/([A-Za-z0-9._@-]+):([A-Za-z]+)$")
_FN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_WORDS = re.compile(r"\S+\s*")
# Tool argument values by schema type: Gemini's OpenAPI schemas spell types in capitals.
_SAMPLES = {"integer": 1, "INTEGER": 1}

_REQUEST_FIELDS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
                   "safetySettings", "cachedContent", "labels", "model"}
_GEN_FIELDS = {"temperature", "topP", "topK", "maxOutputTokens", "stopSequences",
               "candidateCount", "presencePenalty", "frequencyPenalty", "seed",
               "responseMimeType", "responseSchema", "responseJsonSchema", "responseLogprobs",
               "logprobs", "thinkingConfig", "mediaResolution", "responseModalities",
               "speechConfig", "enableEnhancedCivicAnswers"}
_PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse",
              "executableCode", "codeExecutionResult")
_PART_FIELDS = set(_PART_DATA) | {"thought", "thoughtSignature", "videoMetadata",
                                  "mediaResolution"}


_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


def _validate_inline_data(v, where):
    """Blob: mimeType (an IANA type/subtype) and data (non-empty, padded standard base64)."""
    if not isinstance(v, dict) or set(v) - {"mimeType", "data", "displayName"}:
        raise bad(f"* {where}.inline_data: only mime_type, data and display_name are allowed")
    mime, data = v.get("mimeType"), v.get("data")
    if not isinstance(mime, str) or not _MIME.match(mime):
        raise bad(f"* {where}.inline_data.mime_type: a MIME type is required (got {mime!r})")
    if not isinstance(data, str) or not data:
        raise bad(f"* {where}.inline_data.data: data is required")
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        raise bad(f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 "
                  "decoding failed")


def _validate_file_data(v, where, service):
    """FileData: fileUri required; mimeType required on Vertex AI (its FileData says so),
    optional on the Gemini API (an uploaded file has one); gs:// only on Vertex AI."""
    if not isinstance(v, dict) or set(v) - {"mimeType", "fileUri", "displayName"}:
        raise bad(f"* {where}.file_data: only mime_type, file_uri and display_name are allowed")
    uri, mime = v.get("fileUri"), v.get("mimeType")
    if not isinstance(uri, str) or not uri:
        raise bad(f"* {where}.file_data.file_uri: required")
    if mime is not None and (not isinstance(mime, str) or not _MIME.match(mime)):
        raise bad(f"* {where}.file_data.mime_type: not a MIME type ({mime!r})")
    if service == "vertex" and mime is None:
        raise bad(f"* {where}.file_data.mime_type: mime_type is required")
    if service == "vertex" and not uri.startswith(("gs://", "https://")):
        raise bad(f"* {where}.file_data.file_uri: unsupported URI {uri}")
    if service == "aistudio" and not uri.startswith(
            "https://generativelanguage.googleapis.com/"):
        raise bad(f"* {where}.file_data.file_uri: Invalid or unsupported file uri: {uri}")


class GoogleError(Exception):
    def __init__(self, status, message, code=None, details=None):
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED",
                             403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                             429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                             503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}.get(status, "UNKNOWN")
        self.details = details

    def body(self):
        e = {"code": self.status, "message": self.message, "status": self.code}
        if self.details is not None:
            e["details"] = self.details
        return {"error": e}


def google_error(status, message, code=None, details=None):
    return GoogleError(status, message, code, details).body()


def bad(message):
    return GoogleError(400, message)


def embedding_for(text, dims=8):
    """The vector the mock returns for `text`: exact in float32 (multiples of 1/8)."""
    return [(zlib.crc32(f"{text}#{i}".encode()) % 15 - 7) / 8.0 for i in range(dims)]


def decode_base64_embedding(text):
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# -- test key pairs ---------------------------------------------------------------

class ServiceAccount:
    """An RSA key pair made with the openssl CLI and the service-account JSON for it.

    The private key and the JSON are mode 0600, owned by whoever runs the tests (root
    in CI), as a real key should be: httpd reads the JSON as root while it reads its
    configuration, and its children (User nobody) cannot read it at all.
    """

    def __init__(self, directory, token_uri, client_email=CLIENT_EMAIL, key_id=KEY_ID,
                 project="acme-test"):
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        self.dir = directory
        self.key_path = os.path.join(directory, "sa-key.pem")
        self.pub_path = os.path.join(directory, "sa-pub.pem")
        self.json_path = os.path.join(directory, "service-account.json")
        self.client_email, self.key_id, self.project = client_email, key_id, project
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", self.key_path],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", self.key_path, "-pubout", "-out",
                        self.pub_path], check=True, capture_output=True)
        with open(self.key_path) as f:
            self.private_pem = f.read()
        self.write(token_uri)

    def write(self, token_uri, **extra):
        doc = {"type": "service_account", "project_id": self.project,
               "private_key_id": self.key_id, "private_key": self.private_pem,
               "client_email": self.client_email, "client_id": "1234567890",
               "auth_uri": "https://accounts.google.com/o/oauth2/auth",
               "token_uri": token_uri}
        doc.update(extra)
        with open(self.json_path, "w") as f:
            json.dump(doc, f, indent=2)
        os.chmod(self.pub_path, 0o644)
        for p in (self.key_path, self.json_path):
            os.chmod(p, 0o600)
        return self.json_path


# -- the mock ------------------------------------------------------------------------

class MockGemini(MockServer):
    """Gemini API (AI Studio) and Vertex AI, one server.

    api_keys        keys accepted on AI Studio paths
    project/location  the only Vertex AI project and location that exist
    public_key_path   PEM public key the token endpoint verifies assertions with
    token_lifetime  seconds an issued token lives (expires_in)
    """

    name = "gemini"

    def __init__(self, api_keys=(DEFAULT_API_KEY,), project="acme-test", location="us-central1",
                 public_key_path=None, client_email=CLIENT_EMAIL, key_id=KEY_ID,
                 token_lifetime=3600, host="127.0.0.1"):
        super().__init__(host)
        self.api_keys = set(api_keys)
        self.project, self.location = project, location
        self.public_key_path = public_key_path
        self.client_email, self.key_id = client_email, key_id
        self.token_lifetime = token_lifetime
        self.token_outage = None  # an HTTP status: every exchange fails with it
        self._glock = threading.Lock()
        self._tokens = {}  # token -> monotonic expiry
        self.token_requests = []  # {"t", "ok", "claims", "header", "error"}
        self._signatures = set()

    def reset(self):
        super().reset()
        with self._glock:
            self.token_requests = []
            self.token_outage = None

    @property
    def token_uri(self):
        return self.base + "/token"

    def revoke_tokens(self):
        """Forget every issued token (a Vertex request with one then gets 401)."""
        with self._glock:
            self._tokens.clear()

    # -- routing -------------------------------------------------------------

    def route(self, h, rec, fault):
        try:
            if rec.path == "/token":
                self._token(h, rec)
                return
            target = self._target(rec)
            if fault.status != 200:
                self.send_fault_body(h, rec, fault, google_error(fault.status, _FAULT_TEXT.get(
                    fault.status, f"Error {fault.status}.")))
                return
            self._serve(h, rec, fault, target)
        except GoogleError as e:
            self.send_json(h, rec, e.status, e.body())

    def _target(self, rec):
        """(service, model, method) after auth and path checks."""
        m = _MODEL_PATH.match(rec.path)
        v = _VERTEX_PATH.match(rec.path)
        if not m and not v:
            raise GoogleError(404, f"The requested URL {rec.path} was not found on this server.")
        if rec.method != "POST":
            raise GoogleError(405, "Method not allowed.")
        if m:
            self._check_key(rec)
            service, model, method = "aistudio", m.group(2), m.group(3)
        else:
            self._check_token(rec)
            if v.group(2) != self.project:
                raise GoogleError(403, f"Permission denied on resource project {v.group(2)}.")
            if v.group(3) != v.group(3).lower() or v.group(3) != self.location:
                raise GoogleError(400, f"Unsupported location {v.group(3)}.",
                                  "FAILED_PRECONDITION")
            service, model, method = "vertex", v.group(4), v.group(5)
        ctype = rec.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise bad(f"Invalid Content-Type: {ctype or '(none)'}")
        if not isinstance(rec.body, dict):
            raise bad("Invalid JSON payload received.")
        if model.startswith("unknown") or model.startswith("models"):
            raise GoogleError(404, f"models/{model} is not found for API version v1beta, or is "
                                   "not supported for generateContent.")
        return service, model, method

    def _check_key(self, rec):
        key = rec.headers.get("x-goog-api-key")
        if key is None and "key=" in rec.query:
            key = urllib.parse.parse_qs(rec.query).get("key", [None])[0]
        if key is None:
            raise GoogleError(403, "Method doesn't allow unregistered callers (callers without "
                                   "established identity). Please use API Key or other form of "
                                   "API consumer identity to call this API.")
        if key not in self.api_keys:
            raise GoogleError(400, "API key not valid. Please pass a valid API key.", details=[
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com",
                 "metadata": {"service": "generativelanguage.googleapis.com"}}])

    def _check_token(self, rec):
        auth = rec.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        with self._glock:
            expiry = self._tokens.get(token)
        if token is None or expiry is None or expiry <= time.monotonic():
            raise GoogleError(401, "Request had invalid authentication credentials. Expected "
                                   "OAuth 2 access token, login cookie or other valid "
                                   "authentication credential.")

    def _serve(self, h, rec, fault, target):
        service, model, method = target
        handlers = {"generateContent": self._generate, "streamGenerateContent": self._generate,
                    "embedContent": self._embed_content}
        if service == "aistudio":
            handlers["batchEmbedContents"] = self._batch_embed
        else:
            handlers["predict"] = self._predict
        fn = handlers.get(method)
        if fn is None:
            raise GoogleError(404, f"Method {method} not found.")
        fn(h, rec, fault, service, model, method)

    # -- token endpoint -----------------------------------------------------

    def _token(self, h, rec):
        entry = {"t": time.monotonic(), "ok": False, "claims": None, "header": None,
                 "error": None, "content_type": rec.headers.get("content-type", "")}
        with self._glock:
            self.token_requests.append(entry)
            outage = self.token_outage
        if outage:
            entry["error"] = "outage"
            self.send_json(h, rec, outage, {"error": "internal_failure",
                                            "error_description": "Service unavailable."})
            return
        try:
            if entry["content_type"].split(";")[0].strip() != "application/x-www-form-urlencoded":
                raise ValueError("invalid_request", "Bad Request")
            form = urllib.parse.parse_qs(rec.raw.decode(), strict_parsing=True)
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                raise ValueError("unsupported_grant_type", "Invalid grant_type: ")
            header, claims = self._verify_jwt((form.get("assertion") or [""])[0])
            entry["header"], entry["claims"] = header, claims
        except ValueError as e:
            code, desc = e.args if len(e.args) == 2 else ("invalid_request", str(e))
            entry["error"] = code
            self.send_json(h, rec, 400, {"error": code, "error_description": desc})
            return
        token = f"ya29.mock-{next(self._seq)}-{os.urandom(6).hex()}"
        with self._glock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
        entry["ok"], entry["token"] = True, token
        self.send_json(h, rec, 200, {"access_token": token, "expires_in": self.token_lifetime,
                                     "token_type": "Bearer"})

    def _verify_jwt(self, jwt):
        parts = jwt.split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError("invalid_grant", "Invalid JWT: not three parts.")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            sig = _b64url_decode(parts[2])
        except ValueError:
            raise ValueError("invalid_grant", "Invalid JWT: not base64url JSON.")
        if header.get("alg") != "RS256" or header.get("typ") not in (None, "JWT"):
            raise ValueError("invalid_grant", "Invalid JWT: unsupported algorithm.")
        if header.get("kid") not in (None, self.key_id):
            raise ValueError("invalid_grant", "Invalid JWT Signature.")
        if not self._signature_ok(f"{parts[0]}.{parts[1]}".encode(), sig):
            raise ValueError("invalid_grant", "Invalid JWT Signature.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if claims.get("iss") != self.client_email:
            raise ValueError("invalid_grant", "Invalid email or User ID")
        if claims.get("aud") != self.token_uri:
            raise ValueError("invalid_grant", "Invalid JWT: audience mismatch.")
        if SCOPE not in str(claims.get("scope", "")).split():
            raise ValueError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 \
                or exp <= iat or abs(iat - now) > 300:
            raise ValueError("invalid_grant", "Invalid JWT: Token must be a short-lived token "
                                              "(60 minutes) and in a reasonable timeframe.")
        return header, claims

    def _signature_ok(self, data, sig):
        if not self.public_key_path:
            return False
        with tempfile.TemporaryDirectory() as d:
            dp, sp = os.path.join(d, "data"), os.path.join(d, "sig")
            with open(dp, "wb") as f:
                f.write(data)
            with open(sp, "wb") as f:
                f.write(sig)
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", self.public_key_path,
                                "-signature", sp, dp], capture_output=True)
        return r.returncode == 0

    # -- generateContent: validation ------------------------------------------

    def validate_generate(self, body, model, service="aistudio"):
        unknown = set(body) - _REQUEST_FIELDS
        if unknown:
            name = sorted(unknown)[0]
            raise bad(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        decls = self._validate_tools(body)
        self._validate_tool_config(body.get("toolConfig"), decls)
        self._validate_system(body.get("systemInstruction"))
        self._validate_generation(body.get("generationConfig"))
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise bad("* GenerateContentRequest.contents: contents is not specified")
        for i, c in enumerate(contents):
            self._validate_content(c, i, service)
        self._validate_turns(contents)
        if model.startswith("gemini-3"):
            self._validate_signatures(contents)
        return decls

    @staticmethod
    def _validate_system(si):
        if si is None:
            return
        if not isinstance(si, dict) or not isinstance(si.get("parts"), list) or not si["parts"]:
            raise bad("* GenerateContentRequest.system_instruction.parts: must not be empty")
        for p in si["parts"]:
            if not isinstance(p, dict) or not isinstance(p.get("text"), str) or len(p) != 1:
                raise bad("* GenerateContentRequest.system_instruction.parts: only text parts "
                          "are supported")

    @staticmethod
    def _validate_tools(body):
        tools = body.get("tools")
        decls = {}
        if tools is None:
            return decls
        if not isinstance(tools, list):
            raise bad("Invalid JSON payload received. Invalid value at 'tools'.")
        for t in tools:
            if not isinstance(t, dict) or set(t) - {"functionDeclarations", "googleSearch",
                                                    "codeExecution"}:
                raise bad("Invalid JSON payload received. Unknown name in 'tools'.")
            for d in t.get("functionDeclarations") or []:
                name = d.get("name") if isinstance(d, dict) else None
                if not isinstance(name, str) or not _FN_NAME.match(name):
                    raise bad(f"* GenerateContentRequest.tools[0].function_declarations: Invalid "
                              f"function name {name!r}.")
                extra = set(d) - {"name", "description", "parameters", "parametersJsonSchema",
                                  "response", "responseJsonSchema", "behavior"}
                if extra:
                    raise bad(f'Invalid JSON payload received. Unknown name "{sorted(extra)[0]}" '
                              "at 'tools[0].function_declarations[0]': Cannot find field.")
                if "parameters" in d and "parametersJsonSchema" in d:
                    raise bad("parameters and parameters_json_schema are mutually exclusive.")
                if "parametersJsonSchema" in d and not isinstance(d["parametersJsonSchema"], dict):
                    raise bad("parameters_json_schema must be an object.")
                if name in decls:
                    raise bad(f"Duplicate function declaration: {name}.")
                decls[name] = d
        return decls

    @staticmethod
    def _validate_tool_config(tc, decls):
        if tc is None:
            return
        fcc = tc.get("functionCallingConfig") if isinstance(tc, dict) else None
        if not isinstance(fcc, dict):
            raise bad("Invalid JSON payload received. Invalid value at 'tool_config'.")
        mode = fcc.get("mode", "AUTO")
        if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
            raise bad(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode}).")
        names = fcc.get("allowedFunctionNames")
        if names is not None:
            if mode not in ("ANY", "VALIDATED"):
                raise bad("allowed_function_names is only allowed when mode is ANY.")
            for n in names:
                if n not in decls:
                    raise bad(f"allowed_function_names contains {n}, which is not declared.")

    @staticmethod
    def _validate_generation(gc):
        if gc is None:
            return
        if not isinstance(gc, dict):
            raise bad("Invalid JSON payload received. Invalid value at 'generation_config'.")
        unknown = set(gc) - _GEN_FIELDS
        if unknown:
            raise bad(f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at '
                      "'generation_config': Cannot find field.")
        t = gc.get("temperature")
        if t is not None and not (isinstance(t, (int, float)) and 0 <= t <= 2):
            raise bad("* GenerateContentRequest.generation_config.temperature: must be in [0, 2]")
        mot = gc.get("maxOutputTokens")
        if mot is not None and not (isinstance(mot, int) and mot > 0):
            raise bad("* GenerateContentRequest.generation_config.max_output_tokens: must be > 0")
        stops = gc.get("stopSequences")
        if stops is not None and (not isinstance(stops, list) or len(stops) > 5 or not all(
                isinstance(s, str) for s in stops)):
            raise bad("* GenerateContentRequest.generation_config.stop_sequences: at most 5")
        if "responseSchema" in gc and "responseJsonSchema" in gc:
            raise bad("response_schema and response_json_schema are mutually exclusive.")
        if ("responseSchema" in gc or "responseJsonSchema" in gc) and \
                gc.get("responseMimeType") != "application/json":
            raise bad("response_mime_type must be application/json when a response schema is "
                      "set.")
        mime = gc.get("responseMimeType")
        if mime is not None and mime not in ("text/plain", "application/json", "text/x.enum"):
            raise bad(f"* GenerateContentRequest.generation_config.response_mime_type: allowed "
                      f"mimetypes are text/plain, application/json and text/x.enum, not {mime}.")

    @staticmethod
    def _validate_part(p, where, service="aistudio"):
        if not isinstance(p, dict):
            raise bad(f"* {where}: part must be an object")
        unknown = set(p) - _PART_FIELDS
        if unknown:
            raise bad(f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at '
                      f"'{where}': Cannot find field.")
        data = [k for k in _PART_DATA if k in p]
        if len(data) != 1:
            raise bad(f"* {where}: a part must have exactly one data field (got {data})")
        kind, v = data[0], p[data[0]]
        if kind == "text" and not isinstance(v, str):
            raise bad(f"* {where}.text: must be a string")
        if kind == "inlineData":
            _validate_inline_data(v, where)
        if kind == "fileData":
            _validate_file_data(v, where, service)
        if kind == "functionCall":
            if not isinstance(v, dict) or not isinstance(v.get("name"), str) or \
                    set(v) - {"name", "args", "id"} or \
                    ("args" in v and not isinstance(v["args"], dict)):
                raise bad(f"* {where}.function_call: name is required and args must be an "
                          "object")
        if kind == "functionResponse":
            if not isinstance(v, dict) or not isinstance(v.get("name"), str) or \
                    not isinstance(v.get("response"), dict) or \
                    set(v) - {"name", "response", "id", "willContinue", "scheduling", "parts"}:
                raise bad(f"* {where}.function_response: name and response (an object) are "
                          "required")
        if "thoughtSignature" in p:
            try:
                if p["thoughtSignature"] != SKIP_SIGNATURE:
                    base64.b64decode(p["thoughtSignature"], validate=True)
            except (ValueError, TypeError):
                raise bad(f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 "
                          "decoding failed")
        return kind

    def _validate_content(self, c, i, service="aistudio"):
        where = f"GenerateContentRequest.contents[{i}]"
        if not isinstance(c, dict) or set(c) - {"role", "parts"}:
            raise bad(f"* {where}: invalid content")
        if c.get("role") not in ("user", "model", "function"):
            # Vertex AI insists on a role; so do we, on both services.
            raise bad(f"* {where}.role: Please use a valid role: user, model.")
        parts = c.get("parts")
        if not isinstance(parts, list) or not parts:
            raise bad(f"* {where}.parts: contents.parts must not be empty.")
        kinds = [self._validate_part(p, f"{where}.parts[{j}]", service)
                 for j, p in enumerate(parts)]
        if c["role"] == "model" and "functionResponse" in kinds:
            raise bad(f"* {where}: function response parts are only allowed in user turns")
        if c["role"] != "model" and "functionCall" in kinds:
            raise bad(f"* {where}: function call parts are only allowed in model turns")

    @staticmethod
    def _validate_turns(contents):
        if contents[0]["role"] != "user":
            raise bad("Please ensure that multiturn requests start with a user turn.")
        prev = None
        for i, c in enumerate(contents):
            role = "user" if c["role"] == "function" else c["role"]
            if role == prev:
                raise bad("Please ensure that multiturn requests alternate between user and "
                          f"model (contents[{i}] repeats the role {role}).")
            calls = [p["functionCall"] for p in c["parts"] if "functionCall" in p]
            answers = [p["functionResponse"] for p in c["parts"] if "functionResponse" in p]
            before = contents[i - 1] if i else None
            before_calls = [p["functionCall"] for p in before["parts"]
                            if "functionCall" in p] if before else []
            if answers or (before_calls and role == "user"):
                if len(answers) != len(before_calls):
                    raise bad("Please ensure that the number of function response parts is "
                              "equal to the number of function call parts of the function "
                              "call turn.")
                if [a["name"] for a in answers] != [b["name"] for b in before_calls]:
                    raise bad("Please ensure that function response turn comes immediately "
                              "after a function call turn, in the same order.")
                if c["parts"][:len(answers)] != [{"functionResponse": a} for a in answers]:
                    raise bad("Function response parts must come first in their turn.")
                for a, b in zip(answers, before_calls):
                    if a.get("id") != b.get("id"):
                        raise bad("Function response id does not match the function call id.")
            if calls and before is not None and before["role"] == "model":
                raise bad("Please ensure that function call turn comes immediately after a user "
                          "turn or after a function response turn.")
            prev = role

    def _validate_signatures(self, contents):
        start = 0
        for i, c in enumerate(contents):
            if c["role"] == "user" and any("functionResponse" not in p for p in c["parts"]):
                start = i + 1
        for c in contents[start:]:
            if c["role"] != "model":
                continue
            calls = [p for p in c["parts"] if "functionCall" in p]
            if not calls:
                continue
            sig = calls[0].get("thoughtSignature")
            if sig is None:
                raise bad("Function call is missing a thought_signature in functionCall parts. "
                          "This is required for tools to work correctly, and missing "
                          "thought_signature may lead to degraded model performance.")
            with self._glock:
                known = sig in self._signatures
            if sig != SKIP_SIGNATURE and not known:
                raise bad("Corrupted thought signature.")

    # -- generateContent: answers -------------------------------------------------

    def _generate(self, h, rec, fault, service, model, method):
        body = rec.body
        decls = self.validate_generate(body, model, service)
        stream = method == "streamGenerateContent"
        if stream and "alt=sse" not in rec.query.split("&"):
            # Without alt=sse Google answers one JSON array written progressively.
            answer = self.plan(body, model, decls, fault)
            self.send_json(h, rec, 200, [self.response(answer, model, cands)
                                         for cands in self.event_candidates(answer)])
            return
        if fault.body is not None and not stream:
            self.send_fault_body(h, rec, fault, None)
            return
        answer = self.plan(body, model, decls, fault)
        if not stream:
            self.send_json(h, rec, 200, self.response(answer, model, answer["final"]), None,
                           fault)
            return
        self.start_stream(h, rec, None, fault)
        if fault.drop == "after_headers":
            self._abort(h, rec, "dropped")
            return
        if fault.chunks is not None and fault.chunks and isinstance(fault.chunks[0], dict):
            events = [json.dumps(e, separators=(",", ":")) for e in fault.chunks]
        else:
            events = [json.dumps(self.response(answer, model, cands), separators=(",", ":"))
                      for cands in self.event_candidates(answer)]
        self.run_stream(h, rec, fault, events)

    def run_stream(self, h, rec, fault, events):
        """SSE events separated by CRLF blank lines, no terminator (providers.md 6.9)."""
        if fault.first_event_delay and self._pause(h, fault.first_event_delay):
            return
        for i, payload in enumerate(events):
            if fault.drop_after is not None and rec.events_sent >= fault.drop_after:
                self._abort(h, rec, "dropped")
                return
            if fault.end_after is not None and rec.events_sent >= fault.end_after:
                break
            if fault.stall_after is not None and rec.events_sent >= fault.stall_after:
                # "pending" while the stall lasts; then how it ended.
                if self._pause(h, 60):
                    raise _ClientGone()
                self._abort(h, rec, "stalled")
                return
            if fault.error_event_after is not None and rec.events_sent >= fault.error_event_after:
                err = {"error": {"code": 500, "message": fault.error_message,
                                 "status": "INTERNAL"}}
                self.write_chunk(h, ("data: " + json.dumps(err) + "\r\n\r\n").encode())
                rec.events_sent += 1
                break
            if fault.malformed_after is not None and rec.events_sent == fault.malformed_after:
                self.write_chunk(h, b'data: {"candidates":[{"content":\r\n\r\n')
            if i and fault.chunk_delay and self._pause(h, fault.chunk_delay):
                return
            self.write_chunk(h, ("data: " + payload + "\r\n\r\n").encode())
            rec.events_sent += 1
        self.end_chunks(h)
        rec.outcome = "complete"

    @staticmethod
    def _texts(content):
        return " ".join(p["text"] for p in content["parts"] if "text" in p and not p.get(
            "thought"))

    def plan(self, body, model, decls, fault):
        contents = body["contents"]
        last = contents[-1]
        gc = body.get("generationConfig") or {}
        fcc = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        mode = fcc.get("mode", "AUTO")
        allowed = fcc.get("allowedFunctionNames") or list(decls)
        responses = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
        user_text = self._texts(last) if last["role"] != "model" else ""
        images = [p["inlineData"]["mimeType"] for c in contents if c["role"] == "user"
                  for p in c["parts"] if "inlineData" in p]
        calls = []
        if fault.tool_calls is not None:
            calls = [(n, a if isinstance(a, dict) else json.loads(a)) for n, a in fault.tool_calls]
        elif decls and mode != "NONE" and not responses and (
                mode == "ANY" or re.search(r"weather|time|call", user_text, re.I)):
            names = [n for n in allowed if n in decls]
            wanted = names[:2] if re.search(r"\band\b", user_text) else names[:1]
            calls = [(n, self.sample_args(decls[n])) for n in wanted]
        if calls:
            text = None
        elif fault.content is not None:
            text = fault.content
        elif responses:
            text = "result: " + json.dumps([r["response"] for r in responses], sort_keys=True,
                                           separators=(",", ":"))
        else:
            text = "echo: " + user_text
            if images:
                text += " [" + ", ".join(images) + "]"
        if text is not None and gc.get("responseMimeType") == "application/json":
            text = json.dumps({"echo": text})
        n = gc.get("candidateCount", 1)
        thinking = not model.startswith(("gemini-1", "gemini-2.0"))
        prompt = max(1, sum(len(self._texts(c).split()) for c in contents))
        pieces = _WORDS.findall(text) if text else []
        out = max(1, len(pieces) + 4 * len(calls))
        thoughts = 3 if thinking else 0
        return {"text": text, "pieces": pieces or ([text] if text else []),
                "calls": calls, "n": n, "thinking": thinking,
                "finish": fault.finish_reason or "STOP",
                "usage": fault.usage or {"promptTokenCount": prompt, "candidatesTokenCount": out,
                                         "thoughtsTokenCount": thoughts,
                                         "totalTokenCount": prompt + out + thoughts},
                "prompt": prompt, "id": f"mockresp{next(self._seq)}",
                "final": None}

    @staticmethod
    def sample_args(decl):
        schema = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
        return sample_arguments(schema, _SAMPLES)

    def _call_parts(self, a, k):
        parts = []
        for i, (name, args) in enumerate(a["calls"]):
            part = {"functionCall": {"name": name, "args": args}}
            if i == 0 and a["thinking"]:
                sig = base64.b64encode(f"mock-sig:{a['id']}:{k}".encode()).decode()
                with self._glock:
                    self._signatures.add(sig)
                part["thoughtSignature"] = sig
            parts.append(part)
        return parts

    def event_candidates(self, a):
        """Per event, the candidates with their new parts (the last one carries finishReason)."""
        events = []
        if a["calls"]:
            events.append([{"content": {"role": "model", "parts": self._call_parts(a, k)},
                            "index": k} for k in range(a["n"])])
        else:
            for piece in a["pieces"]:
                events.append([{"content": {"role": "model", "parts": [{"text": piece}]},
                                "index": k} for k in range(a["n"])])
        if not events:
            events.append([{"content": {"role": "model", "parts": []}, "index": k}
                           for k in range(a["n"])])
        for c in events[-1]:
            c["finishReason"] = a["finish"]
            if a["finish"] != "STOP":
                c["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                       "probability": "HIGH", "blocked": True}]
        a["final"] = [{"content": {"role": "model", "parts": self._call_parts(a, k) if a["calls"]
                                   else ([{"text": a["text"]}] if a["text"] else [])},
                       "finishReason": a["finish"], "index": k} for k in range(a["n"])]
        return events

    def response(self, a, model, cands):
        if cands is None:
            self.event_candidates(a)
            cands = a["final"]
        return {"candidates": cands, "usageMetadata": a["usage"], "modelVersion": model,
                "responseId": a["id"]}

    # -- embeddings ----------------------------------------------------------

    @staticmethod
    def _content_text(content, where):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts or not all(
                isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
            raise bad(f"* {where}.content.parts: text parts are required")
        return " ".join(p["text"] for p in parts)

    @staticmethod
    def _dims(value, where):
        if value is None:
            return 8
        if not isinstance(value, int) or value < 1 or value > 3072:
            raise bad(f"* {where}.output_dimensionality: must be in [1, 3072]")
        return value

    def _embed_content(self, h, rec, fault, service, model, method):
        body = rec.body
        allowed = {"content", "taskType", "title", "outputDimensionality", "model"} \
            if service == "aistudio" else {"content", "embedContentConfig"}
        unknown = set(body) - allowed
        if unknown:
            raise bad(f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": '
                      "Cannot find field.")
        text = self._content_text(body.get("content"), "EmbedContentRequest")
        if service == "vertex" and model == "gemini-embedding-001":
            raise bad("gemini-embedding-001 is served by :predict on Vertex AI.")
        cfg = body.get("embedContentConfig") or {}
        dims = self._dims(body.get("outputDimensionality", cfg.get("outputDimensionality")),
                          "EmbedContentRequest")
        out = {"embedding": {"values": embedding_for(text, dims)}}
        if service == "vertex":
            out["usageMetadata"] = {"promptTokenCount": len(text.split())}
            out["truncated"] = False
        self.send_json(h, rec, 200, out, None, fault)

    def _batch_embed(self, h, rec, fault, service, model, method):
        reqs = rec.body.get("requests")
        if set(rec.body) - {"requests"} or not isinstance(reqs, list) or not reqs:
            raise bad("* BatchEmbedContentsRequest.requests: must not be empty")
        if len(reqs) > 100:
            raise bad("* BatchEmbedContentsRequest.requests: at most 100 requests can be in "
                      "one batch")
        vectors = []
        for i, r in enumerate(reqs):
            where = f"BatchEmbedContentsRequest.requests[{i}]"
            if not isinstance(r, dict) or set(r) - {"model", "content", "taskType", "title",
                                                    "outputDimensionality"}:
                raise bad(f"* {where}: unknown field")
            if r.get("model") != f"models/{model}":
                raise bad(f"* {where}.model: the model must be models/{model} (as in the URL)")
            text = self._content_text(r.get("content"), where)
            vectors.append({"values": embedding_for(text, self._dims(
                r.get("outputDimensionality"), where))})
        self.send_json(h, rec, 200, {"embeddings": vectors}, None, fault)

    def _predict(self, h, rec, fault, service, model, method):
        body = rec.body
        inst = body.get("instances")
        if set(body) - {"instances", "parameters"} or not isinstance(inst, list) or not inst:
            raise bad("instances must be a non-empty list")
        if model == "gemini-embedding-001" and len(inst) > 1:
            raise bad("gemini-embedding-001 supports only one instance per request.")
        params = body.get("parameters") or {}
        dims = self._dims(params.get("outputDimensionality"), "PredictRequest.parameters")
        preds = []
        for i, x in enumerate(inst):
            if not isinstance(x, dict) or not isinstance(x.get("content"), str) or set(x) - {
                    "content", "task_type", "title"}:
                raise bad(f"instances[{i}] must be {{\"content\": <text>}}")
            preds.append({"embeddings": {"values": embedding_for(x["content"], dims),
                                         "statistics": {"token_count": len(x["content"].split()),
                                                        "truncated": False}}})
        self.send_json(h, rec, 200, {"predictions": preds, "metadata": {
            "billableCharacterCount": sum(len(x["content"]) for x in inst)}}, None, fault)


_FAULT_TEXT = {
    400: "Request contains an invalid argument.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
         "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


def retry_info_body(seconds, message=_FAULT_TEXT[429]):
    """A 429 body with RetryInfo, as the Gemini API sends it."""
    return google_error(429, message, "RESOURCE_EXHAUSTED", [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_"
                                        "free_tier_requests",
                         "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"}])


if __name__ == "__main__":  # stand-alone: python3 mock_google.py
    with MockGemini() as m:
        serve_until_interrupted(
            f"mock Gemini on {m.base} (key {DEFAULT_API_KEY}); Ctrl-C to stop")
