"""FleetFreedom / Trak-iT error codes, subscription types and ``v`` slot tables (§4, §5, §7)."""

from __future__ import annotations

import enum

__all__ = [
    "OBJECT_SLOTS",
    "PIECE_SLOTS",
    "SUBSCRIPTION_TYPES",
    "ErrorCode",
    "SubscriptionType",
    "error_code",
    "is_name",
    "key_field",
    "list_command",
    "piece_of",
    "plural",
    "upper_first",
]


class ErrorCode(enum.IntEnum):
    """Every ``errorCode`` of spec §7 (4.x: 0-84, 5.x: up to 142).

    Codes not listed here are carried as plain ``int`` (see :func:`error_code`).
    """

    SUCCESS = 0
    UNKNOWN = 1
    SERVICE = 2
    INVALID_DATA = 3
    INVALID_PERMISSION = 4
    PERMISSION_DENIED = 5
    WRONG_VERSION_KEY = 6
    SESSION_EXPIRED = 7
    USER_NOT_LOGGED_IN = 8
    SESSION_KILLED = 9
    LOGGED_OUT = 10
    INVALID_CREDENTIALS = 11
    APPLICATION_NOT_ALLOWED = 12
    IP_NOT_ALLOWED = 13
    MULTI_USER_DENIED = 14
    NONCOMPLIANT_PASSWORD = 15
    PASSWORD_EXPIRED = 16
    SAME_PASSWORD = 17
    KILL_SESSION_FAILED = 18
    SESSION_NOT_FOUND = 19
    ASSET_NOT_FOUND = 20
    ASSET_NOT_DELETED = 21
    ASSETS_LIST_NOT_FOUND = 22
    BEHAVIOUR_SCRIPT_NOT_FOUND = 23
    BEHAVIOUR_SCRIPT_NOT_DELETED = 24
    BEHAVIOUR_SCRIPT_IN_USE = 25
    BEHAVIOUR_NOT_FOUND = 26
    BEHAVIOUR_NOT_DELETED = 27
    COMPANY_NOT_FOUND = 28
    COMPANY_NOT_DELETED = 29
    USER_GROUP_NOT_FOUND = 30
    CONTACT_NOT_FOUND = 31
    CONTACT_NOT_DELETED = 32
    ICON_NOT_FOUND = 33
    ICON_NOT_DELETED = 34
    MAINTENANCE_JOB_NOT_FOUND = 35
    MAINTENANCE_JOB_NOT_DELETED = 36
    MAINTENANCE_SCHEDULE_NOT_FOUND = 37
    MAINTENANCE_SCHEDULE_NOT_DELETED = 38
    MAINTENANCE_SCHEDULE_IN_USE = 39
    PLACE_NOT_FOUND = 40
    PLACE_NOT_DELETED = 41
    PLACES_LIST_NOT_FOUND = 42
    PROVIDER_NOT_FOUND = 43
    PROVIDER_NOT_DELETED = 44
    PROVIDERS_LIST_NOT_FOUND = 45
    DELETED_PROVIDER = 46
    PROVIDER_CONFIGURATION_TYPE_NOT_FOUND = 47
    PROVIDER_CONFIGURATION_NOT_FOUND = 48
    PROVIDER_CONFIGURATION_NOT_DELETED = 49
    PROVIDER_CONFIGURATION_IN_USE = 50
    INVALID_CONFIGURATION_OPTIONS = 51
    REPORT_TEMPLATE_NOT_FOUND = 52
    REPORT_TEMPLATE_NOT_DELETED = 53
    USER_NOT_FOUND = 54
    USER_NOT_DELETED = 55
    DELETED_USER = 56
    SUICIDE = 57
    LABELS_LIST_NOT_UNIQUE = 58
    TAGS_LIST_NOT_UNIQUE = 59
    USER_GROUPS_LIST_NOT_FOUND = 60
    UNKNOWN_COMMAND = 61
    TIMEZONE_NOT_FOUND = 62
    ASSET_MESSAGE_NOT_FOUND = 63
    DISPATCH_TASK_NOT_FOUND = 64
    USER_GROUP_IN_USE = 65
    USER_GROUP_NOT_DELETED = 66
    REPORT_RESULT_NOT_FOUND = 67
    PICTURE_NOT_FOUND = 68
    PICTURES_LIST_NOT_FOUND = 69
    PICTURE_NOT_DELETED = 70
    PERMISSION_ESCALATION = 71
    USER_ALREADY_EXISTS = 72
    SESSION_THROTTLED = 73
    USERS_LIST_NOT_FOUND = 74
    REPORT_RESULT_NOT_DELETED = 75
    CARRIER_NOT_FOUND = 76
    CARRIER_NOT_DELETED = 77
    INSPECTION_NOT_FOUND = 78
    INSPECTION_NOT_DELETED = 79
    GEOCODER_ERROR = 80
    GEOCODER_NOT_FOUND = 81
    DIRECTIONS_ERROR = 82
    DIRECTIONS_NOT_FOUND = 83
    ELOG_NOT_FOUND = 84
    USER_DISABLED = 85
    INVALID_REGISTRATION = 86
    INVALID_HASH = 87
    INVALID_VERIFICATION = 88
    VERIFY_TIMEOUT = 89
    INVALID_MIME = 90
    FILESIZE_EXCEEDED = 91
    INVALID_PROVIDER_TYPE = 92
    REPORT_SCHEDULE_NOT_FOUND = 93
    REPORT_SCHEDULE_NOT_DELETED = 94
    REPORT_RESULT_NOT_READY = 95
    ASSET_SUSPENDED = 96
    ASSET_NOT_SUSPENDED = 97
    PROVIDER_SUSPENDED = 98
    PROVIDER_NOT_SUSPENDED = 99
    DISPATCH_TASK_NOT_DELETED = 100
    ASSET_MESSAGE_NOT_DELETED = 101
    PROVIDER_SCRIPT_NOT_FOUND = 102
    PROVIDER_SCRIPT_NOT_DELETED = 103
    PROVIDER_SCRIPT_IN_USE = 104
    COMMAND_THROTTLED = 105
    RESELLER_NOT_FOUND = 106
    RESELLER_NOT_DELETED = 107
    OPERATION_PENDING = 108
    OPERATION_RUNNING = 109
    OPERATION_FAILED = 110
    BILLING_PROFILE_NOT_FOUND = 111
    BILLING_PROFILE_NOT_DELETED = 112
    HOSTING_RULE_NOT_FOUND = 113
    HOSTING_RULE_NOT_DELETED = 114
    HOSTING_DISCOUNT_NOT_FOUND = 115
    HOSTING_DISCOUNT_NOT_DELETED = 116
    HOSTING_LICENSE_NOT_FOUND = 117
    HOSTING_LICENSE_NOT_DELETED = 118
    BILLING_REPORT_NOT_FOUND = 119
    BILLING_REPORT_NOT_DELETED = 120
    CONTACT_IN_USE = 121
    DOCUMENT_NOT_FOUND = 122
    DOCUMENT_NOT_DELETED = 123
    DOCUMENTS_LIST_NOT_FOUND = 124
    UNCHANGED = 125
    NOTHING = 126
    MACHINE_NOT_FOUND = 127
    MACHINE_NOT_DELETED = 128
    MACHINE_NOT_ALLOWED = 129
    INVALID_OPERATION = 130
    REFERRER_NOT_ALLOWED = 131
    FORM_TEMPLATE_NOT_FOUND = 132
    FORM_TEMPLATE_NOT_DELETED = 133
    FORM_RESULT_NOT_FOUND = 134
    FORM_RESULT_NOT_DELETED = 135
    FORM_RESULTS_LIST_NOT_FOUND = 136
    DISPATCH_TEMPLATE_NOT_FOUND = 137
    DISPATCH_TEMPLATE_NOT_DELETED = 138
    DISPATCH_JOB_NOT_FOUND = 139
    DISPATCH_JOB_NOT_DELETED = 140
    DISPATCH_JOBS_LIST_NOT_FOUND = 141
    FORM_TEMPLATE_IN_USE = 142

    @property
    def wire_name(self) -> str:
        """The camelCase name the official reference types use (``invalidData``)."""
        head, *rest = self.name.lower().split("_")
        return head + "".join(part.capitalize() for part in rest)


_CODES: dict[int, ErrorCode] = {int(code): code for code in ErrorCode}


def error_code(value: object) -> ErrorCode | int | None:
    """An ``errorCode`` as read from a message: the enum member, a plain ``int`` when the
    code is unknown, ``None`` when it is missing or not an integer."""
    if type(value) is int:
        return _CODES.get(value, value)
    return None


class SubscriptionType(str, enum.Enum):
    """Subscription type names of spec §4 (4.10.2 and the 5.x additions).

    A ``str`` enum, so members compare equal to the wire names; unknown names stay ``str``.
    """

    ANALYTIC_RULE = "analyticRule"
    ANALYTIC_SUMMARY = "analyticSummary"
    ASSET_ADVANCED = "assetAdvanced"
    ASSET_GENERAL = "assetGeneral"
    ASSET_MESSAGE = "assetMessage"
    BEHAVIOUR = "behaviour"
    BEHAVIOUR_LOG = "behaviourLog"
    BEHAVIOUR_SCRIPT = "behaviourScript"
    COMPANY_GENERAL = "companyGeneral"
    COMPANY_LABELS = "companyLabels"
    COMPANY_POLICIES = "companyPolicies"
    CONTACT = "contact"
    DISPATCH_TASK = "dispatchTask"
    HOS_CARRIER = "hosCarrier"
    HOS_EVENT = "hosEvent"
    HOS_INSPECTION = "hosInspection"
    ICON = "icon"
    MAINTENANCE_JOB = "maintenanceJob"
    MAINTENANCE_SCHEDULE = "maintenanceSchedule"
    PICTURE = "picture"
    PLACE_GENERAL = "placeGeneral"
    PROVIDER_ADVANCED = "providerAdvanced"
    PROVIDER_CONFIGURATION = "providerConfiguration"
    PROVIDER_GENERAL = "providerGeneral"
    REPORT_RESULT = "reportResult"
    REPORT_TEMPLATE = "reportTemplate"
    USER_ADVANCED = "userAdvanced"
    USER_GENERAL = "userGeneral"
    USER_GROUP = "userGroup"
    ASSET_DISPATCH = "assetDispatch"
    DISPATCH_JOB = "dispatchJob"
    FORM_TEMPLATE = "formTemplate"
    FORM_RESULT = "formResult"
    PROVIDER_SCRIPT = "providerScript"
    PROVIDER_CONFIG = "providerConfig"
    PROVIDER_CONTROL = "providerControl"
    PROVIDER_REGISTRATION = "providerRegistration"
    COMPANY_RESELLER = "companyReseller"
    BILLING_PROFILE = "billingProfile"
    BILLING_HOSTING = "billingHosting"
    BILLING_DISCOUNT = "billingDiscount"
    BILLING_LICENSE = "billingLicense"
    BILLING_REPORT = "billingReport"
    DOCUMENT = "document"
    REPORT_SCHEDULE = "reportSchedule"
    USER_AUTHENTICATION = "userAuthentication"
    USER_STATE = "userState"
    MACHINE = "machine"


SUBSCRIPTION_TYPES = frozenset(member.value for member in SubscriptionType)

OBJECT_SLOTS: dict[str, tuple[str, ...]] = {
    "asset": ("general", "advanced", "dispatch"),
    "provider": ("general", "advanced", "control"),
    "user": ("general", "advanced"),
    "place": ("general", "extended"),
    "company": ("general", "billing", "directory", "labels", "policies", "reseller"),
}
"""Which piece owns each slot of an object's ``v`` (spec §5); other types have one piece."""

PIECE_SLOTS: dict[str, tuple[str, int]] = {
    obj + piece.capitalize(): (obj, slot)
    for obj, pieces in OBJECT_SLOTS.items()
    for slot, piece in enumerate(pieces)
}
"""``assetAdvanced`` → ``("asset", 1)``: the object type and the ``v`` slot of a piece."""
# Trak-iT 5.x names the reseller piece companyReseller and 4.x the policies piece
# companyPolicies; both are generated above.  ``companyLabels`` also carries tags (slot 3).


def piece_of(name: str) -> tuple[str, int]:
    """The object type and ``v`` slot a piece (subscription type) updates.

    Types outside the slot tables are single-piece objects: the type itself, slot 0.
    """
    return PIECE_SLOTS.get(name) or (name, 0)


def key_field(object_type: str) -> str:
    """The field that identifies an object: ``login`` for users, ``id`` for the rest."""
    return "login" if object_type == "user" else "id"


def plural(object_type: str) -> str:
    """The plural the list commands use: y → ies, ch → es, otherwise + s (spec §3)."""
    if object_type.endswith("y"):
        return object_type[:-1] + "ies"
    if object_type.endswith("ch"):
        return object_type + "es"
    return object_type + "s"


def list_command(object_type: str) -> str:
    """``asset`` → ``getAssetsList``."""
    return "get" + upper_first(plural(object_type)) + "List"


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def is_name(text: str) -> bool:
    """A lowerCamelCase identifier: an ASCII lowercase letter, then ASCII letters/digits."""
    return text.isascii() and text.isalnum() and "a" <= text[0] <= "z"
