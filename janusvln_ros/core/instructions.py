"""Validation of operator instructions (service requests, action goals): no rclpy.

An instruction is accepted only if it is valid UTF-8 text, not empty, not longer than the
configured limit and free of control characters (tab and newlines allowed). Everything else is
refused with an :class:`~janusvln_ros.core.errors.InputError` saying what was wrong.
"""

from __future__ import annotations

import unicodedata

from janusvln_ros.core.errors import InputError


def validate_instruction(text: str | bytes, max_chars: int) -> str:
    """Check an instruction; return it as ``str`` or raise :class:`InputError` with the reason.

    Args:
        text: The instruction. ``bytes`` must be valid UTF-8. A ``str`` holding U+FFFD
            (what rclpy decodes invalid UTF-8 on the wire into) or lone surrogates is rejected.
        max_chars: Longest accepted length in characters.

    Returns:
        The instruction, unchanged.

    Raises:
        InputError: Empty or whitespace only, too long, not valid UTF-8, or control characters.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode('utf-8')
        except UnicodeDecodeError as exc:
            raise InputError(f'instruction is not valid UTF-8: {exc.reason} at byte '
                             f'{exc.start}') from None
    if not isinstance(text, str):
        raise InputError(f'instruction: expected text, got {type(text).__name__}')
    if '\ufffd' in text:
        raise InputError('instruction is not valid UTF-8 (it holds U+FFFD replacement '
                         'characters, which is how invalid bytes arrive)')
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise InputError('instruction is not valid UTF-8 (lone surrogate code points)')
    if not text.strip():
        raise InputError('instruction is empty or whitespace only')
    if len(text) > max_chars:
        raise InputError(f'instruction is too long: {len(text)} characters, '
                         f'max_instruction_chars is {max_chars}')
    bad = [c for c in text if unicodedata.category(c) == 'Cc' and c not in '\t\n\r']
    if bad:
        raise InputError(f'instruction holds {len(bad)} control character(s), '
                         f'e.g. {bad[0]!r}')
    return text
