"""Django's JSON serializer with whole timestamps: its own encoder cuts microseconds to
milliseconds, and an audit entry's hash covers its timestamp to the microsecond, so a chain
dumped that way would no longer verify after a restore. Registered as ``apjson`` by backup.py."""

from __future__ import annotations

import datetime as dt

from django.core.serializers.json import Deserializer as JSONDeserializer
from django.core.serializers.json import DjangoJSONEncoder
from django.core.serializers.json import Serializer as JSONSerializer


class WholeTimeEncoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, dt.datetime):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        if isinstance(o, dt.time):
            return o.isoformat()
        return super().default(o)


class Serializer(JSONSerializer):
    def _init_options(self) -> None:
        self.options.setdefault("cls", WholeTimeEncoder)
        super()._init_options()


Deserializer = JSONDeserializer
