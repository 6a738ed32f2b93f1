from django.apps import AppConfig


class MicroareaConfig(AppConfig):
    name = "microarea"
    verbose_name = "微区域 Micro-areas"
