-- 0001 — foundation: SIP trunks as data, and the call detail records Asterisk writes.

-- A trunk is rendered into pjsip_trunks.conf (one endpoint, aor, identify, and auth/registration
-- when it needs them) and applied with a live PJSIP reload.
CREATE TABLE trunks (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
    host            text NOT NULL CHECK (host ~ '^[A-Za-z0-9.:-]+$'),
    port            integer NOT NULL DEFAULT 5060 CHECK (port BETWEEN 1 AND 65535),
    auth            text NOT NULL DEFAULT 'ip' CHECK (auth IN ('ip', 'digest', 'register')),
    username        text,
    password        text,
    from_user       text,
    from_domain     text,
    codecs          text NOT NULL DEFAULT 'alaw,ulaw' CHECK (codecs ~ '^[a-z0-9]+(,[a-z0-9]+)*$'),
    number_format   text NOT NULL DEFAULT 'e164'
                    CHECK (number_format IN ('e164', 'national', 'international00', 'digits')),
    pai_number      text,           -- identity the operator vouches for when the caller ID is hidden
    max_channels    integer NOT NULL DEFAULT 30 CHECK (max_channels > 0),
    max_cps         double precision NOT NULL DEFAULT 5 CHECK (max_cps > 0),
    priority        integer NOT NULL DEFAULT 100,
    enabled         boolean NOT NULL DEFAULT true,
    demo            boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (auth = 'ip' OR (username IS NOT NULL AND password IS NOT NULL))
);

-- Written by Asterisk's cdr_pgsql (columns matched by name). uniqueid is the channel id the
-- engine chose, which is the attempt id: the dialer reconciles attempts that ended while it
-- was not listening.
CREATE TABLE asterisk_cdr (
    id              bigserial PRIMARY KEY,
    start           timestamptz,
    answer          timestamptz,
    "end"           timestamptz,
    clid            text,
    src             text,
    dst             text,
    dcontext        text,
    channel         text,
    dstchannel      text,
    lastapp         text,
    lastdata        text,
    duration        integer,
    billsec         integer,
    disposition     text,
    amaflags        integer,
    accountcode     text,
    uniqueid        text,
    userfield       text,
    peeraccount     text,
    linkedid        text,
    sequence        integer,
    inserted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX asterisk_cdr_uniqueid ON asterisk_cdr (uniqueid);
