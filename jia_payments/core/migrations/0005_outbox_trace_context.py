from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_outbox_dead"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxevent",
            name="trace_context",
            field=models.JSONField(
                blank=True,
                help_text="W3C trace context (traceparent, tracestate) of the transaction that wrote it, "
                "when traced: the message carries it, in its headers and the envelope",
                null=True,
            ),
        ),
    ]
