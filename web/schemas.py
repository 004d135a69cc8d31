"""Request and response shapes, declared once: they validate requests and produce
the OpenAPI document."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

INT64 = validate.Range(min=-(2**63), max=2**63 - 1)


class FullMatch(validate.Regexp):
    """``validate.Regexp`` held to the whole string.

    marshmallow's ``Regexp`` uses ``re.match``, where ``$`` also matches before a trailing
    newline: ``"name\\n"`` passed ``^[A-Za-z0-9_.-]{3,32}$``. This one uses ``fullmatch``,
    so a pattern means what the OpenAPI document (ECMA syntax, no such exception) says.
    Every pattern in the request schemas is one of these (``tests/test_schemas.py``).
    """

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise validate.ValidationError(self._format_error(value))
        return value


# The username rule, one place: the schema, the database's CHECK constraint and the page.
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"


class StrictInteger(fields.Integer):
    """A JSON integer: no floats, no strings, no booleans."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


# ``storable`` as the OpenAPI document states it on every text of a request schema
# (web.openapi), in two patterns: no NUL character; no unpaired surrogate (a pair is one
# character to Python and to an ECMA engine in Unicode mode, and matches the second
# alternative in an engine that reads UTF-16 code units). Engines that cannot hold a
# surrogate at all (Rust's) drop the second and keep the first.
NO_NUL_PATTERN = r"^[^\u0000]*$"
NO_LONE_SURROGATE_PATTERN = r"^(?:[^\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$"
STORABLE_TEXT = {"pattern": NO_NUL_PATTERN, "allOf": [{"pattern": NO_LONE_SURROGATE_PATTERN}]}


def storable(text: str) -> bool:
    """Whether PostgreSQL (and UTF-8) can hold ``text``: no NUL character, and no unpaired
    surrogate (JSON's ``"\\ud800"`` escape decodes to one)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Strict(ma.Schema):
    """A request's body or query: unknown fields refused, and every text ``storable`` (no
    name, password, token or rule ever holds anything else)."""

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def refuse_unstorable_text(self, data, **kwargs):
        if hasattr(data, "keys"):
            bad = {key: ["Must not contain a NUL character or an unpaired surrogate."] for key in data.keys()
                   if isinstance(data.get(key), str) and not storable(data.get(key))}
            if bad:
                raise ma.ValidationError(bad)
        return data


class ErrorBody(ma.Schema):
    code = fields.String(required=True, metadata={"description": "snake_case error code"})
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields", metadata={"description": "per-field messages (schema errors)"})


class ErrorSchema(ma.Schema):
    error = fields.Nested(ErrorBody, required=True)


class UnavailableBody(ErrorBody):
    job_id = fields.String(metadata={"description": "the submission accepted all the same (look it up)"})
    status_url = fields.String(metadata={"description": "where to look it up"})


class UnavailableSchema(ma.Schema):
    error = fields.Nested(UnavailableBody, required=True)


class Credentials(Strict):
    username = fields.String(required=True, validate=FullMatch(USERNAME_PATTERN))
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))


class LoginRequest(Strict):
    username = fields.String(required=True, validate=validate.Length(max=64))
    password = fields.String(required=True, validate=validate.Length(max=128))


class UserCreated(ma.Schema):
    id = fields.Integer()
    username = fields.String()


class TokenPair(ma.Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"description": "seconds until the access token expires"})


class AccessToken(ma.Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class Revoked(ma.Schema):
    revoked = fields.Boolean()


class Place(ma.Schema):
    period = fields.String()
    score = fields.Integer()
    rank = fields.Integer(allow_none=True)
    previous_rank = fields.Integer(allow_none=True)


PLACES = {"keys": fields.String(), "values": fields.Nested(Place),
          "metadata": {"description": "{board id: the place there}, for each board it counted on"}}


class Me(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    score = fields.Integer()
    rank = fields.Integer(allow_none=True, metadata={"description": "competition rank; null with no score yet"})
    boards = fields.Dict(**{**PLACES, "metadata": {
        "description": "{board id: the caller's place in its open period}; previous_rank is the final rank "
                       "of the period before"}})


class ActionTypeSchema(ma.Schema):
    name = fields.String()
    min_delta = fields.Integer()
    max_delta = fields.Integer()
    min_duration_ms = fields.Integer()


class ActionTypeList(ma.Schema):
    action_types = fields.List(fields.Nested(ActionTypeSchema))


class ActionTypeName(fields.String):
    """The name of an action type. Any text passes the schema (an unknown name is 422
    ``unknown_action_type``, as the contract says); the OpenAPI document lists the
    configured names as its ``enum`` (web.openapi)."""


class ActionRequest(Strict):
    action_type = ActionTypeName(required=True, validate=validate.Length(min=1, max=64))


class ActionTokenSchema(ma.Schema):
    action_token = fields.String()
    secret = fields.String(metadata={"description": "base64url of 32 bytes: the HMAC key"})
    action_type = fields.String()
    issued_at = fields.Integer(metadata={"description": "unix ms"})
    expires_at = fields.Integer(metadata={"description": "unix ms"})


class SubmissionRequest(Strict):
    action_token = fields.String(required=True, validate=validate.Length(min=1, max=64))
    score_delta = StrictInteger(required=True, validate=INT64)
    completed_at = StrictInteger(required=True, validate=validate.Range(min=0, max=2**63 - 1),
                                 metadata={"description": "unix ms"})
    signature = fields.String(
        required=True,
        validate=FullMatch(r"^[0-9a-fA-F]{64}$"),
        metadata={"description": "hex HMAC-SHA256(key=secret, msg=f'{action_token}.{score_delta}.{completed_at}')"},
    )


class Accepted(ma.Schema):
    job_id = fields.String()
    status_url = fields.String()
    state = fields.String(metadata={"example": "queued"})


class AppliedResult(ma.Schema):
    job_id = fields.String()
    state = fields.String(metadata={"example": "applied"})
    user_id = fields.Integer()
    score = fields.Integer()
    rank = fields.Integer(allow_none=True)
    score_delta = fields.Integer()
    flagged = fields.Boolean()
    boards = fields.Dict(**PLACES)


class JobStatus(ma.Schema):
    job_id = fields.String()
    state = fields.String(validate=validate.OneOf(["queued", "applied", "rejected", "failed"]))
    result = fields.Nested(AppliedResult)
    error = fields.Nested(ErrorBody)


class BoardQuery(Strict):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))


class BoardEntry(ma.Schema):
    rank = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    score = fields.Integer()


class Board(ma.Schema):
    board = fields.String(metadata={"example": "all-time"})
    period = fields.String(metadata={"example": "all"})
    entries = fields.List(fields.Nested(BoardEntry))
    version = fields.Integer()
    generated_at = fields.Integer(metadata={"description": "unix ms"})


class Health(ma.Schema):
    status = fields.String()
    checks = fields.Dict()


# --- admin -------------------------------------------------------------------------

ID = validate.Range(min=1, max=2**63 - 1)


class FlagQuery(Strict):
    state = fields.String(validate=validate.OneOf(["open", "approved", "reverted"]))
    rule = fields.String(validate=validate.Length(min=1, max=64), metadata={"description": "a rule that fired"})
    user_id = fields.Integer(validate=ID)
    before = fields.Integer(validate=ID, metadata={"description": "cursor: the previous page's next_before"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class BoardPeriod(ma.Schema):
    board = fields.String()
    period = fields.String()


class Flag(ma.Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    job_id = fields.String(metadata={"description": "the submission (its job id)"})
    action_token = fields.String()
    action_type = fields.String()
    score_delta = fields.Integer()
    rules = fields.Dict(metadata={"description": "{rule name: the figures that made it fire}"})
    boards = fields.List(fields.Nested(BoardPeriod), metadata={"description": "the board periods it counted on"})
    state = fields.String(validate=validate.OneOf(["open", "approved", "reverted"]))
    created_at = fields.Integer(metadata={"description": "unix ms"})
    resolved_at = fields.Integer(allow_none=True, metadata={"description": "unix ms"})
    resolved_by = fields.Integer(allow_none=True, metadata={"description": "the admin's user id"})


class FlagList(ma.Schema):
    flags = fields.List(fields.Nested(Flag))
    next_before = fields.Integer(allow_none=True, metadata={"description": "cursor of the next page; null at the end"})


class ResolveRequest(Strict):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "revert"]))


class Resolved(ma.Schema):
    flag_id = fields.Integer()
    state = fields.String(validate=validate.OneOf(["approved", "reverted"]))
    user_id = fields.Integer()
    score = fields.Integer(metadata={"description": "the user's score afterwards"})


class Moderated(ma.Schema):
    user_id = fields.Integer()
    username = fields.String()
    banned = fields.Boolean()
    score = fields.Integer()


class AdminSession(ma.Schema):
    dashboard_url = fields.String(metadata={"example": "/admin/rq/"})
    expires_in = fields.Integer(metadata={"description": "seconds until the dashboard session ends at the latest "
                                                       "(it ends with the login session)"})


class UserQuery(Strict):
    search = fields.String(validate=validate.Length(min=1, max=32),
                           metadata={"description": "only names containing this text, whatever its case"})
    banned = fields.Boolean(metadata={"description": "only banned (true) or only not banned (false) users"})
    before = fields.Integer(validate=ID, metadata={"description": "cursor: the previous page's next_before"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class AdminUser(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    score = fields.Integer()
    banned = fields.Boolean()
    is_admin = fields.Boolean()


class UserList(ma.Schema):
    users = fields.List(fields.Nested(AdminUser))
    next_before = fields.Integer(allow_none=True, metadata={"description": "cursor of the next page; null at the end"})


class FailedJobQuery(Strict):
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class HeldSubmission(ma.Schema):
    job_id = fields.String(metadata={"description": "the submission's id (its job id for its client)"})
    user_id = fields.Integer()
    username = fields.String(allow_none=True)
    action_type = fields.String()
    score_delta = fields.Integer()
    accepted_at = fields.Integer(metadata={"description": "unix ms"})
    state = fields.String(metadata={"description": "queued, applied, rejected or failed"})


class FailedJob(ma.Schema):
    job_id = fields.String(metadata={"description": "the RQ job's id"})
    batch_id = fields.String()
    failed_at = fields.Integer(allow_none=True, metadata={"description": "unix ms"})
    error = fields.String(metadata={"description": "the exception's last line"})
    dashboard_url = fields.String(metadata={"description": "the job's page in the RQ dashboard"})
    submissions = fields.List(fields.Nested(HeldSubmission),
                              metadata={"description": "the submissions of its batch still on record"})


class FailedJobList(ma.Schema):
    jobs = fields.List(fields.Nested(FailedJob))
    total = fields.Integer(metadata={"description": "failed apply jobs in the registry"})


# --- boards --------------------------------------------------------------------------

CURSOR = validate.Length(min=1, max=512)
PERIOD_KEY = FullMatch(r"^[A-Za-z0-9-]{1,32}$")


class PeriodSpan(ma.Schema):
    key = fields.String()
    starts_at = fields.Integer(metadata={"description": "unix ms"})
    ends_at = fields.Integer(allow_none=True, metadata={"description": "unix ms; null: never ends (all-time)"})


class BoardInfo(ma.Schema):
    id = fields.String()
    window = fields.String(validate=validate.OneOf(["all_time", "daily", "weekly", "monthly", "fixed", "season"]))
    time_zone = fields.String()
    period = fields.Nested(PeriodSpan, allow_none=True, metadata={"description": "the open period; null between seasons"})
    next_reset_at = fields.Integer(allow_none=True, metadata={"description": "unix ms; null for all-time"})


class BoardList(ma.Schema):
    boards = fields.List(fields.Nested(BoardInfo))


class PeriodState(PeriodSpan):
    state = fields.String(validate=validate.OneOf(["open", "closing", "final"]))
    revised_at = fields.Integer(allow_none=True, metadata={"description": "unix ms of an admin's revert after the close"})


class BoardPageQuery(Strict):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=CURSOR, metadata={"description": "the previous page's next_cursor"})
    period = fields.String(validate=PERIOD_KEY, metadata={"description": "a period key (default: the open one)"})


class BoardPage(ma.Schema):
    board = fields.String()
    period = fields.Nested(PeriodState, allow_none=True)
    entries = fields.List(fields.Nested(BoardEntry))
    total = fields.Integer(metadata={"description": "entries on the board in this period"})
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})
    version = fields.Integer()
    generated_at = fields.Integer(metadata={"description": "unix ms"})


class AroundQuery(Strict):
    limit = fields.Integer(load_default=11, validate=validate.Range(min=1, max=101))
    period = fields.String(validate=PERIOD_KEY)


class MyPlace(ma.Schema):
    rank = fields.Integer()
    score = fields.Integer()


class AroundMe(ma.Schema):
    board = fields.String()
    period = fields.Nested(PeriodState, allow_none=True)
    entries = fields.List(fields.Nested(BoardEntry))
    total = fields.Integer()
    me = fields.Nested(MyPlace, allow_none=True, metadata={"description": "null when the caller is not on the board"})


class PeriodQuery(Strict):
    period = fields.String(validate=PERIOD_KEY)


class UserOnBoard(ma.Schema):
    user_id = fields.Integer()
    username = fields.String()
    rank = fields.Integer(allow_none=True, metadata={"description": "null when not on the board"})
    score = fields.Integer(allow_none=True)
    total = fields.Integer()
    percentile = fields.Float(allow_none=True, metadata={"description": "0-100: the share of the board ranked at or below"})


class PeriodsQuery(Strict):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=FullMatch(r"^[0-9]{1,20}$"))


class Winner(ma.Schema):
    user_id = fields.Integer()
    username = fields.String()
    score = fields.Integer()


class ClosedPeriod(PeriodState):
    winner = fields.Nested(Winner, allow_none=True)


class PeriodList(ma.Schema):
    periods = fields.List(fields.Nested(ClosedPeriod))
    next_cursor = fields.String(allow_none=True)


# The last millisecond a date can hold (9999-12-31T23:59:59.999Z): later ones were a 500.
UNIX_MS = validate.Range(min=0, max=253402300799999)


class SeasonRequest(Strict):
    key = fields.String(required=True, validate=FullMatch(r"^[a-z0-9][a-z0-9-]{0,31}$"))
    starts_at = StrictInteger(required=True, validate=UNIX_MS, metadata={"description": "unix ms"})
    ends_at = StrictInteger(required=True, validate=UNIX_MS, metadata={"description": "unix ms"})
