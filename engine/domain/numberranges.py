"""phonenumbers' metadata compiled into one regex per region and length, for normalize's fast path
(engine/domain/numbers.py): a single ``fullmatch`` replaces parse + is_valid_number + number_type."""

from __future__ import annotations

import functools
import re
from typing import Final

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata


@functools.cache
def region_country_code(region: str) -> int:
    return int(phonenumbers.country_code_for_region(region))


@functools.cache
def country_ranges(country_code: int) -> tuple[RegionRanges, ...]:
    return tuple(RegionRanges(region) for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code])


# phonenumbers' own order of tests in its number-type helper; the first match wins.
_TYPE_ORDER: Final = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


class RegionRanges:
    """One region's number ranges, compiled from phonenumbers' metadata into one regex per length.

    It reproduces phonenumbers' region choice (leading digits, else validity) and its number-type
    helper, so a single ``fullmatch`` replaces parse + is_valid_number + number_type.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.general_desc is None:
            raise LookupError(f"phonenumbers has no metadata for region {region}")
        self._leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None
        self._by_length: dict[int, tuple[re.Pattern[str], dict[str, int]]] = {}
        general = metadata.general_desc
        for length in general.possible_length:
            self._by_length[length] = self._compile(metadata, length)

    @staticmethod
    def _compile(metadata: PhoneMetadata, length: int) -> tuple[re.Pattern[str], dict[str, int]]:
        def pattern_for(field: str) -> str | None:
            desc = getattr(metadata, field)
            if desc is None or not desc.national_number_pattern:
                return None
            if desc.possible_length and length not in desc.possible_length:
                return None
            return str(desc.national_number_pattern)

        branches: list[str] = []
        types: dict[str, int] = {}

        def add(pattern: str, number_type: int) -> None:
            name = f"t{len(branches)}"
            branches.append(f"(?P<{name}>{pattern})")
            types[name] = number_type

        for field, number_type in _TYPE_ORDER:
            pattern = pattern_for(field)
            if pattern is not None:
                add(f"(?:{pattern})", number_type)
        fixed, mobile = pattern_for("fixed_line"), pattern_for("mobile")
        if fixed is not None:
            if metadata.same_mobile_and_fixed_line_pattern:
                add(f"(?:{fixed})", PhoneNumberType.FIXED_LINE_OR_MOBILE)
            else:
                if mobile is not None:
                    add(f"(?=(?:{mobile})\\Z)(?:{fixed})", PhoneNumberType.FIXED_LINE_OR_MOBILE)
                add(f"(?:{fixed})", PhoneNumberType.FIXED_LINE)
        if mobile is not None and not metadata.same_mobile_and_fixed_line_pattern:
            add(f"(?:{mobile})", PhoneNumberType.MOBILE)
        general = pattern_for("general_desc") or "(?!)"
        body = "|".join(branches) or "(?!)"
        return re.compile(f"(?=(?:{general})\\Z)(?:{body})"), types

    @property
    def without_leading_digits(self) -> bool:
        return self._leading is None

    def for_length(self, length: int) -> tuple[re.Pattern[str], dict[str, int]] | None:
        return self._by_length.get(length)

    def number_type(self, nsn: str) -> int:
        compiled = self._by_length.get(len(nsn))
        if compiled is None:
            return int(PhoneNumberType.UNKNOWN)
        pattern, types = compiled
        match = pattern.fullmatch(nsn)
        if match is None or match.lastgroup is None:
            return int(PhoneNumberType.UNKNOWN)
        return types[match.lastgroup]

    def resolve(self, nsn: str) -> int | None:
        """The number's type if phonenumbers would pick this region for it (UNKNOWN: invalid), else None."""
        if self._leading is not None:
            return self.number_type(nsn) if self._leading.match(nsn) else None
        number_type = self.number_type(nsn)
        return None if number_type == PhoneNumberType.UNKNOWN else number_type
