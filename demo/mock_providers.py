"""Local mock providers for the demo gateway (scripts/demo).

Starts the mock provider servers of the end-to-end suite on loopback ports,
writes their base URLs and keys to the JSON file named on the command line,
and serves until it is terminated.
"""
import json
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

from mock_anthropic import ANTHROPIC_KEY, MockAnthropic  # noqa: E402
from mock_dialects import MISTRAL_KEY, MockMistral  # noqa: E402
from mock_openai import DEFAULT_KEY  # noqa: E402
from mock_responses import MockResponses  # noqa: E402


def main():
    state_file = sys.argv[1]
    mocks = {
        # OpenAI's Chat Completions and Responses APIs.
        "openai": (MockResponses(models=("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")),
                   DEFAULT_KEY),
        "anthropic": (MockAnthropic(models=("claude-sonnet-mock",)), ANTHROPIC_KEY),
        "mistral": (MockMistral(), MISTRAL_KEY),
    }
    state = {}
    for name, (mock, key) in mocks.items():
        mock.start()
        state[name] = {"url": mock.url, "key": key}
    tmp = state_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, state_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    done.wait()
    for mock, _ in mocks.values():
        mock.stop()


if __name__ == "__main__":
    main()
