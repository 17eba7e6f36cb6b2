"""Dependency aliases routes declare: settings and the transcription service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aymurai.settings import Settings
from aymurai.transcription.service import TranscriptionService


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> TranscriptionService:
    service: TranscriptionService = request.app.state.service
    return service


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ServiceDep = Annotated[TranscriptionService, Depends(get_service)]
