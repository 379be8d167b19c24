"""Tokens issued before keys were stored as digests held the key itself: replace each with its
digest (``agileplus.api.tokens.token_digest``). The keys keep working; the database no longer
reveals them. One way: a digest cannot be turned back into its key."""

import hashlib

from django.db import migrations


def hash_plain_keys(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    for token in list(Token.objects.all()):
        digest = hashlib.sha256(token.key.encode()).hexdigest()[:40]  # token_digest, frozen here
        user_id, created = token.user_id, token.created
        token.delete()  # the key is the primary key: a new row, same user and date
        Token.objects.create(key=digest, user_id=user_id)
        Token.objects.filter(key=digest).update(created=created)  # `created` is auto_now_add


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_api_roles"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(hash_plain_keys, migrations.RunPython.noop)]
