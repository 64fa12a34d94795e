"""A LiteLLM callback that appends each request's StandardLoggingPayload to $PAYLOAD_OUT as one JSON line.

This is what LiteLLM hands every logging integration (`kwargs["standard_logging_object"]`), so the lines are
exactly what a user's own callback or a LiteLLM logging integration would have stored.
"""
import json
import os

from litellm.integrations.custom_logger import CustomLogger


class PayloadLogger(CustomLogger):
    def _write(self, kwargs):
        payload = kwargs.get("standard_logging_object")
        if payload is None:
            return
        with open(os.environ["PAYLOAD_OUT"], "a", encoding="utf-8") as f:
            f.write(json.dumps(payload, default=str) + "\n")

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._write(kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._write(kwargs)


handler = PayloadLogger()
