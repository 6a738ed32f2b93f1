"""API tokens that expire: a field team's tool signs in again after API_TOKEN_HOURS, so a token copied
off a lost laptop stops working by itself."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


def token_expired(token: Token) -> bool:
    return token.created < timezone.now() - timedelta(hours=settings.API_TOKEN_HOURS)


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise AuthenticationFailed(f"the token has expired (they last {settings.API_TOKEN_HOURS} hours): "
                                       "get a new one from /api/v1/auth/token/")
        return user, token
