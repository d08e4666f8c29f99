# Tag's natural primary key (name) becomes a surrogate id, typed by DEFAULT_AUTO_FIELD like the model's
# implicit id; the name stays unique. Written for db_surrogate_pk, which does the schema work online and
# records this migration without running it.

from django.conf import settings
from django.db import migrations, models
from django.utils.module_loading import import_string

AUTO_FIELD = import_string(settings.DEFAULT_AUTO_FIELD)


class Migration(migrations.Migration):

    dependencies = [
        ("shelf", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tag",
            name="name",
            field=models.CharField(max_length=50, unique=True),
        ),
        migrations.AddField(
            model_name="tag",
            name="id",
            field=AUTO_FIELD(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
            preserve_default=False,
        ),
    ]
