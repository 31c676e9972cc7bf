-- evsync hub store, PostgreSQL (15+), migration version 1: the schema the
-- SQLite store reaches at its version 10 (schema.sql .. credentials.sql,
-- plus devices.device_class), table by table, index by index, trigger by
-- trigger. Applied by Store::migrate_postgres in one transaction, in the
-- schema first in `search_path`; evsync_schema_version is the Rust side's.
-- pg/NOTES.md says what was mapped how and where the engines differ.
--
-- Types: INTEGER -> BIGINT, BLOB -> BYTEA, TEXT -> TEXT COLLATE "C" (byte
-- order, as SQLite's BINARY collation: ids, keys and RFC 3339 times are
-- compared and ordered as text). Row ids SQLite hands out are identity
-- columns; media has an explicit `rowid` (queries order by it).

-- =====================================================================
-- SQLite compatibility functions
-- =====================================================================
-- So that query text written for SQLite keeps working where PostgreSQL
-- lets a function of the same name and arguments exist, with SQLite's
-- results (a port of SQLite 3.54's date.c for the forms below), and NULL
-- where SQLite gives NULL. Forms SQLite has but these do not reproduce
-- raise an error instead of answering differently. They call one another
-- unqualified (no SET search_path: it would double the cost of each call),
-- so the schema they are in must be on the caller's search_path.

-- Days in month `mo` of year `y` (date.c daysOfMonth).
CREATE FUNCTION sqlite_days_of_month(y int, mo int) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN mo IN (1, 3, 5, 7, 8, 10, 12) THEN 31
        WHEN mo <> 2 THEN 30
        WHEN y % 4 = 0 AND (y % 100 <> 0 OR y % 400 = 0) THEN 29
        ELSE 28
    END
$$;

-- Julian day times 86 400 000 of a broken-down time (date.c computeJD),
-- NULL where SQLite fails (year outside -4713..9999).
CREATE FUNCTION sqlite_compute_jd(y int, mo int, d int, h int, mi int, s double precision,
                                  has_hms boolean, tz int) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    a int;
    b int;
    x1 int;
    x2 int;
    jd bigint;
BEGIN
    IF y < -4713 OR y > 9999 THEN
        RETURN NULL;
    END IF;
    IF mo <= 2 THEN
        y := y - 1;
        mo := mo + 12;
    END IF;
    a := (y + 4800) / 100;
    b := 38 - a + (a / 4);
    x1 := 36525 * (y + 4716) / 100;
    x2 := 306001 * (mo + 1) / 10000;
    jd := trunc(((x1 + x2 + d + b)::double precision - 1524.5::double precision)
                * 86400000::double precision)::bigint;
    IF has_hms THEN
        jd := jd + h * 3600000 + mi * 60000
              + trunc(s * 1000::double precision + 0.5::double precision)::bigint;
        jd := jd - tz * 60000;
    END IF;
    RETURN jd;
END
$$;

-- HH:MM[:SS[.FFF]] followed by an optional time zone ([+-]HH:MM or Z) and
-- nothing else but spaces (date.c parseHhMmSs and parseTimezone).
CREATE FUNCTION sqlite_parse_hms(z text, OUT ok boolean, OUT h int, OUT mi int,
                                 OUT s double precision, OUT tz int)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    m text[];
    rest text;
    sec int;
    ms double precision := 0;
    scale double precision := 1;
    c text;
    spaces constant text := E' \t\n\x0b\f\r';
BEGIN
    ok := false;
    tz := 0;
    m := regexp_match(z, '^([0-9]{2}):([0-9]{2})(.*)$');
    IF m IS NULL THEN
        RETURN;
    END IF;
    h := m[1]::int;
    mi := m[2]::int;
    IF h > 24 OR mi > 59 THEN
        RETURN;
    END IF;
    rest := m[3];
    IF left(rest, 1) = ':' THEN
        m := regexp_match(rest, '^:([0-9]{2})(.*)$');
        IF m IS NULL OR m[1]::int > 59 THEN
            RETURN;
        END IF;
        sec := m[1]::int;
        rest := m[2];
        m := regexp_match(rest, '^\.([0-9]+)(.*)$');
        IF m IS NOT NULL THEN
            FOR i IN 1 .. length(m[1]) LOOP
                ms := ms * 10::double precision + (ascii(substr(m[1], i, 1)) - 48);
                scale := scale * 10::double precision;
            END LOOP;
            ms := ms / scale;
            IF ms > 0.999::double precision THEN
                ms := 0.999::double precision;
            END IF;
            rest := m[2];
        END IF;
    ELSE
        sec := 0;
    END IF;
    IF h = 24 AND (mi <> 0 OR sec <> 0 OR ms <> 0) THEN
        RETURN;
    END IF;
    s := sec + ms;
    rest := ltrim(rest, spaces);
    c := left(rest, 1);
    IF c = '-' OR c = '+' THEN
        m := regexp_match(rest, '^[-+]([0-9]{2}):([0-9]{2})(.*)$');
        IF m IS NULL OR m[1]::int > 14 OR m[2]::int > 59 THEN
            RETURN;
        END IF;
        tz := (CASE WHEN c = '-' THEN -1 ELSE 1 END) * (m[2]::int + m[1]::int * 60);
        rest := ltrim(m[3], spaces);
    ELSIF c = 'Z' OR c = 'z' THEN
        rest := ltrim(substr(rest, 2), spaces);
    END IF;
    ok := rest = '';
END
$$;

-- The instant SQLite's date and time functions take from their arguments
-- (date.c isDate), as a julian day times 86 400 000, or NULL where SQLite
-- gives NULL. `t` is a time value given as text, `num` one given as a
-- number (exactly one of them is not NULL); `modifier` the one modifier,
-- if any. Modifiers: 'unixepoch', '[+-]N second|minute|hour|day[s]',
-- '[+-]HH:MM[:SS[.FFF]]', 'subsec' (no effect here); the others raise.
CREATE FUNCTION sqlite_time(t text, num double precision, modifier text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    spaces constant text := E' \t\n\x0b\f\r';
    number constant text :=
        '^[ \t\n\x0b\f\r]*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?[ \t\n\x0b\f\r]*$';
    raw double precision;   -- the number given, while it may still be seconds (SQLite's rawS)
    jd bigint;              -- the instant, once known (SQLite's validJD)
    parsed boolean := false;
    m text[];
    hms record;
    y int;
    mo int;
    d int;
    h int;
    mxd int;
    lm text;
    z0 text;
    n int;
    r double precision;
    unit text;
    xform double precision;
    lim double precision;
    off bigint;
BEGIN
    IF num IS NOT NULL THEN
        raw := num;
    ELSIF t IS NULL THEN
        RETURN NULL;
    ELSIF t ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?Z$'
          AND substr(t, 6, 2)::int BETWEEN 1 AND 12 AND substr(t, 9, 2)::int BETWEEN 1 AND 31
          AND substr(t, 12, 2)::int <= 23 AND substr(t, 15, 2)::int <= 59 AND substr(t, 18, 2)::int <= 59 THEN
        -- Fast path, same result: the form the store writes (RFC 3339, UTC).
        jd := sqlite_compute_jd(substr(t, 1, 4)::int, substr(t, 6, 2)::int, substr(t, 9, 2)::int,
                                substr(t, 12, 2)::int, substr(t, 15, 2)::int,
                                substr(t, 18, 2)::int + CASE WHEN length(t) = 20 THEN 0::double precision
                                    ELSE substr(t, 21, length(t) - 21)::double precision
                                         / (10::double precision ^ (length(t) - 21)) END,
                                true, 0);
    ELSE
        -- YYYY-MM-DD, then optionally (after spaces or T) a time.
        m := regexp_match(t, '^(-?)([0-9]{4})-([0-9]{2})-([0-9]{2})(.*)$');
        IF m IS NOT NULL AND m[3]::int BETWEEN 1 AND 12 AND m[4]::int BETWEEN 1 AND 31 THEN
            y := m[2]::int;
            mo := m[3]::int;
            d := m[4]::int;
            hms := sqlite_parse_hms(ltrim(m[5], spaces || 'T'));
            IF hms.ok THEN
                h := hms.h;
                IF h = 24 THEN
                    mxd := sqlite_days_of_month(y, mo);
                    h := 0;
                    d := d + 1;
                    IF d > mxd THEN
                        d := d - mxd;
                        mo := mo + 1;
                        IF mo > 12 THEN
                            mo := 1;
                            y := y + 1;
                        END IF;
                    END IF;
                END IF;
                IF m[1] = '-' THEN
                    y := -y;
                END IF;
                jd := sqlite_compute_jd(y, mo, d, h, hms.mi, hms.s, true, hms.tz);
                parsed := true;
            ELSIF ltrim(m[5], spaces || 'T') = '' THEN
                IF m[1] = '-' THEN
                    y := -y;
                END IF;
                jd := sqlite_compute_jd(y, mo, d, 0, 0, 0, false, 0);
                parsed := true;
            END IF;
        END IF;
        -- A time alone: on 2000-01-01.
        IF NOT parsed THEN
            hms := sqlite_parse_hms(t);
            IF hms.ok THEN
                IF hms.h = 24 THEN
                    jd := sqlite_compute_jd(2000, 1, 2, 0, hms.mi, hms.s, true, hms.tz);
                ELSE
                    jd := sqlite_compute_jd(2000, 1, 1, hms.h, hms.mi, hms.s, true, hms.tz);
                END IF;
                parsed := true;
            END IF;
        END IF;
        IF NOT parsed THEN
            IF lower(t) IN ('now', 'subsec', 'subsecond') THEN
                RAISE EXCEPTION 'the time value % (the current time) is not supported by this compatibility function', t;
            ELSIF t ~ number THEN
                BEGIN
                    raw := t::double precision;
                EXCEPTION WHEN others THEN
                    RETURN NULL;    -- beyond a double's range
                END;
            ELSE
                RETURN NULL;
            END IF;
        END IF;
    END IF;
    IF raw IS NOT NULL AND raw >= 0 AND raw < 5373484.5::double precision THEN
        -- A number in range is a julian day number unless 'unixepoch' follows.
        jd := trunc(raw * 86400000::double precision + 0.5::double precision)::bigint;
    END IF;

    IF modifier IS NOT NULL THEN
        lm := lower(modifier);
        z0 := left(modifier, 1);
        IF lm = 'unixepoch' THEN
            IF raw IS NULL THEN
                RETURN NULL;
            END IF;
            r := raw * 1000::double precision + 210866760000000::double precision;
            IF r >= 0 AND r < 464269060800000::double precision THEN
                jd := trunc(r + 0.5::double precision)::bigint;
                raw := NULL;
            ELSE
                RETURN NULL;
            END IF;
        ELSIF lm IN ('subsec', 'subsecond') THEN
            NULL;
        ELSIF modifier ~ '^[-+]?[0-9]{1,6} (second|minute|hour|day)s?$' THEN
            -- Fast path, same result: '+8 hours' and the like.
            IF jd IS NULL THEN
                RETURN NULL;
            END IF;
            jd := jd + split_part(modifier, ' ', 1)::bigint * 1000 * CASE rtrim(split_part(modifier, ' ', 2), 's')
                WHEN 'second' THEN 1 WHEN 'minute' THEN 60 WHEN 'hour' THEN 3600 ELSE 86400 END;
        ELSIF z0 ~ '^[-+0-9]$' THEN
            -- The number ends at ':', a space, or the '-' of a (+|-)YYYY-MM-DD.
            n := 1;
            WHILE n < length(modifier) LOOP
                EXIT WHEN substr(modifier, n + 1, 1) = ':';
                EXIT WHEN strpos(spaces, substr(modifier, n + 1, 1)) > 0;
                EXIT WHEN substr(modifier, n + 1, 1) = '-'
                      AND ((n = 5 AND substr(modifier, 2, 4) ~ '^[0-9]{4}$')
                        OR (n = 6 AND substr(modifier, 2, 5) ~ '^[0-9]{5}$'
                            AND substr(modifier, 2, 5)::int <= 14712));
                n := n + 1;
            END LOOP;
            IF left(modifier, n) !~ number THEN
                RETURN NULL;
            END IF;
            r := left(modifier, n)::double precision;
            IF substr(modifier, n + 1, 1) = '-' THEN
                IF z0 <> '+' AND z0 <> '-' THEN
                    RETURN NULL;
                END IF;
                RAISE EXCEPTION 'the modifier % is not supported by this compatibility function', modifier;
            ELSIF substr(modifier, n + 1, 1) = ':' THEN
                -- [+-]HH:MM[:SS[.FFF]]: a time of day added or subtracted.
                hms := sqlite_parse_hms(CASE WHEN z0 ~ '^[0-9]$' THEN modifier ELSE substr(modifier, 2) END);
                IF NOT hms.ok THEN
                    RETURN NULL;
                END IF;
                IF hms.h = 24 THEN
                    off := sqlite_compute_jd(2000, 1, 2, 0, hms.mi, hms.s, true, hms.tz);
                ELSE
                    off := sqlite_compute_jd(2000, 1, 1, hms.h, hms.mi, hms.s, true, hms.tz);
                END IF;
                off := off - 43200000;
                off := off - (off / 86400000) * 86400000;
                IF z0 = '-' THEN
                    off := -off;
                END IF;
                IF jd IS NULL THEN
                    RETURN NULL;
                END IF;
                jd := jd + off;
            ELSE
                -- [+-]N unit
                unit := ltrim(substr(modifier, n + 1), spaces);
                IF length(unit) < 3 OR length(unit) > 10 THEN
                    RETURN NULL;
                END IF;
                IF lower(right(unit, 1)) = 's' THEN
                    unit := left(unit, length(unit) - 1);
                END IF;
                unit := lower(unit);
                CASE unit
                    WHEN 'second' THEN xform := 1; lim := 4.6427e+14;
                    WHEN 'minute' THEN xform := 60; lim := 7.7379e+12;
                    WHEN 'hour' THEN xform := 3600; lim := 1.2897e+11;
                    WHEN 'day' THEN xform := 86400; lim := 5373485.0;
                    WHEN 'month', 'year' THEN
                        RAISE EXCEPTION 'the modifier % is not supported by this compatibility function', modifier;
                    ELSE
                        RETURN NULL;
                END CASE;
                IF jd IS NULL THEN
                    RETURN NULL;
                END IF;
                IF NOT (r > -lim AND r < lim) THEN
                    RETURN NULL;
                END IF;
                jd := jd + trunc(r * 1000::double precision * xform
                                 + CASE WHEN r < 0 THEN -0.5 ELSE 0.5 END::double precision)::bigint;
            END IF;
        ELSIF lm IN ('auto', 'ceiling', 'floor', 'julianday', 'localtime', 'utc')
           OR lm LIKE 'start of %' OR lm LIKE 'end of %' OR lm LIKE 'weekday %' THEN
            RAISE EXCEPTION 'the modifier % is not supported by this compatibility function', modifier;
        ELSE
            RETURN NULL;
        END IF;
    END IF;

    IF jd IS NULL OR jd < 0 OR jd > 464269060799999 THEN
        RETURN NULL;
    END IF;
    RETURN jd;
END
$$;

-- Year, month and day of an instant (date.c computeYMD).
CREATE FUNCTION sqlite_ymd(jd bigint) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    z int;
    alpha int;
    a int;
    b int;
    c int;
    d int;
    e int;
    x1 int;
    mo int;
BEGIN
    z := ((jd + 43200000) / 86400000)::int;
    alpha := trunc((z::double precision + 32044.75::double precision) / 36524.25::double precision)::int - 52;
    a := z + 1 + alpha - ((alpha + 100) / 4) + 25;
    b := a + 1524;
    c := trunc((b::double precision - 122.1::double precision) / 365.25::double precision)::int;
    d := (36525 * (c & 32767)) / 100;
    e := trunc((b - d)::double precision / 30.6001::double precision)::int;
    x1 := trunc(30.6001::double precision * e)::int;
    mo := CASE WHEN e < 14 THEN e - 1 ELSE e - 13 END;
    RETURN ARRAY[CASE WHEN mo > 2 THEN c - 4716 ELSE c - 4715 END, mo, b - d - x1];
END
$$;

-- printf's %0<width>d (pad '0') or %<width>d (pad ' ').
CREATE FUNCTION sqlite_pad(v bigint, width int, pad text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN length(v::text) >= width THEN v::text
        WHEN v < 0 AND pad = '0' THEN '-' || lpad((-v)::text, width - 1, '0')
        ELSE lpad(v::text, width, pad)
    END
$$;

-- date(X, modifier) of a date and time as text: YYYY-MM-DD, or NULL.
CREATE FUNCTION date(t text, modifier text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    jd bigint := sqlite_time(t, NULL, modifier);
    ymd int[];
BEGIN
    IF jd IS NULL THEN
        RETURN NULL;
    END IF;
    ymd := sqlite_ymd(jd);
    RETURN CASE WHEN ymd[1] < 0 THEN '-' ELSE '' END
        || lpad((abs(ymd[1]) % 10000)::text, 4, '0') || '-'
        || lpad(ymd[2]::text, 2, '0') || '-' || lpad(ymd[3]::text, 2, '0');
END
$$;

-- date(X, modifier) of a number (SQLite takes an integer as a double too):
-- date(seconds, 'unixepoch'), or a julian day number.
CREATE FUNCTION date(num double precision, modifier text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    jd bigint := sqlite_time(NULL, num, modifier);
    ymd int[];
BEGIN
    IF jd IS NULL THEN
        RETURN NULL;
    END IF;
    ymd := sqlite_ymd(jd);
    RETURN CASE WHEN ymd[1] < 0 THEN '-' ELSE '' END
        || lpad((abs(ymd[1]) % 10000)::text, 4, '0') || '-'
        || lpad(ymd[2]::text, 2, '0') || '-' || lpad(ymd[3]::text, 2, '0');
END
$$;

-- unixepoch(X): whole seconds since 1970 (truncated), NULL on NULL or on
-- text that is no time.
CREATE FUNCTION unixepoch(t text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    jd bigint := sqlite_time(t, NULL, NULL);
BEGIN
    RETURN jd / 1000 - 210866760000;
END
$$;

-- strftime(format, X) with SQLite's conversions (%J excepted: it raises).
CREATE FUNCTION sqlite_strftime(fmt text, jd bigint) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    ymd int[];
    day_ms int;
    hh int;
    mi int;
    sec_ms int;
    z bigint;
    jan01 int;
    after_jan01 int;
    after_monday int;
    after_sunday int;
    thursday int[];
    out text := '';
    i int := 1;
    c text;
    cf text;
    v int;
BEGIN
    IF fmt IS NULL OR jd IS NULL THEN
        RETURN NULL;
    END IF;
    ymd := sqlite_ymd(jd);
    day_ms := ((jd + 43200000) % 86400000)::int;
    sec_ms := day_ms % 60000;
    mi := (day_ms / 60000) % 60;
    hh := day_ms / 3600000;
    z := (jd + 43200000) / 86400000;
    jan01 := ((sqlite_compute_jd(ymd[1], 1, 1, 0, 0, 0, false, 0) + 43200000) / 86400000)::int;
    after_jan01 := (z - jan01)::int;
    after_monday := (z % 7)::int;
    after_sunday := (((jd + 129600000) / 86400000) % 7)::int;
    WHILE i <= length(fmt) LOOP
        c := substr(fmt, i, 1);
        IF c <> '%' THEN
            out := out || c;
            i := i + 1;
            CONTINUE;
        END IF;
        cf := substr(fmt, i + 1, 1);
        i := i + 2;
        CASE cf
            WHEN 'd' THEN out := out || sqlite_pad(ymd[3], 2, '0');
            WHEN 'e' THEN out := out || sqlite_pad(ymd[3], 2, ' ');
            WHEN 'f' THEN out := out || lpad((sec_ms / 1000)::text, 2, '0') || '.' || lpad((sec_ms % 1000)::text, 3, '0');
            WHEN 'F' THEN out := out || sqlite_pad(ymd[1], 4, '0') || '-' || sqlite_pad(ymd[2], 2, '0') || '-' || sqlite_pad(ymd[3], 2, '0');
            WHEN 'G', 'g' THEN
                thursday := sqlite_ymd(jd + (3 - after_monday) * 86400000::bigint);
                IF cf = 'g' THEN
                    out := out || sqlite_pad(thursday[1] % 100, 2, '0');
                ELSE
                    out := out || sqlite_pad(thursday[1], 4, '0');
                END IF;
            WHEN 'H' THEN out := out || sqlite_pad(hh, 2, '0');
            WHEN 'k' THEN out := out || sqlite_pad(hh, 2, ' ');
            WHEN 'I', 'l' THEN
                v := CASE WHEN hh > 12 THEN hh - 12 WHEN hh = 0 THEN 12 ELSE hh END;
                out := out || sqlite_pad(v, 2, CASE WHEN cf = 'I' THEN '0' ELSE ' ' END);
            WHEN 'j' THEN out := out || sqlite_pad(after_jan01 + 1, 3, '0');
            WHEN 'J' THEN
                RAISE EXCEPTION 'strftime %%J is not supported by this compatibility function';
            WHEN 'm' THEN out := out || sqlite_pad(ymd[2], 2, '0');
            WHEN 'M' THEN out := out || sqlite_pad(mi, 2, '0');
            WHEN 'p' THEN out := out || CASE WHEN hh >= 12 THEN 'PM' ELSE 'AM' END;
            WHEN 'P' THEN out := out || CASE WHEN hh >= 12 THEN 'pm' ELSE 'am' END;
            WHEN 'R' THEN out := out || sqlite_pad(hh, 2, '0') || ':' || sqlite_pad(mi, 2, '0');
            WHEN 's' THEN out := out || (jd / 1000 - 210866760000)::text;
            WHEN 'S' THEN out := out || sqlite_pad(sec_ms / 1000, 2, '0');
            WHEN 'T' THEN out := out || sqlite_pad(hh, 2, '0') || ':' || sqlite_pad(mi, 2, '0') || ':' || sqlite_pad(sec_ms / 1000, 2, '0');
            WHEN 'u' THEN out := out || CASE WHEN after_sunday = 0 THEN 7 ELSE after_sunday END;
            WHEN 'w' THEN out := out || after_sunday;
            WHEN 'U' THEN out := out || sqlite_pad((after_jan01 - after_sunday + 7) / 7, 2, '0');
            WHEN 'V' THEN
                thursday := sqlite_ymd(jd + (3 - after_monday) * 86400000::bigint);
                v := ((jd + (3 - after_monday) * 86400000::bigint + 43200000) / 86400000
                      - (sqlite_compute_jd(thursday[1], 1, 1, 0, 0, 0, false, 0) + 43200000) / 86400000)::int;
                out := out || sqlite_pad(v / 7 + 1, 2, '0');
            WHEN 'W' THEN out := out || sqlite_pad((after_jan01 - after_monday + 7) / 7, 2, '0');
            WHEN 'Y' THEN out := out || sqlite_pad(ymd[1], 4, '0');
            WHEN '%' THEN out := out || '%';
            ELSE RETURN NULL;
        END CASE;
    END LOOP;
    RETURN out;
END
$$;

CREATE FUNCTION strftime(fmt text, t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT sqlite_strftime(fmt, sqlite_time(t, NULL, NULL)) $$;

CREATE FUNCTION strftime(fmt text, num double precision) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT sqlite_strftime(fmt, sqlite_time(NULL, num, NULL)) $$;

-- json_extract(X, path) for paths of '$', '.key', '."key"', '[N]' and
-- '[#-N]', as text: a string unquoted, an integer as SQLite gives it, any
-- other number as written, true/false as 1/0 (SQLite's values), an object
-- or array as its JSON text as written; NULL when the path is not there or
-- holds null. Malformed JSON or a bad path raises.
CREATE FUNCTION json_extract(doc text, path text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    j json := doc::json;
    p text := path;
    m text[];
    k int;
BEGIN
    IF left(p, 1) <> '$' THEN
        RAISE EXCEPTION 'bad JSON path: %', path;
    END IF;
    p := substr(p, 2);
    WHILE p <> '' LOOP
        IF left(p, 2) = '."' THEN
            m := regexp_match(p, '^\."([^"]*)"(.*)$');
            IF m IS NULL THEN
                RAISE EXCEPTION 'bad JSON path: %', path;
            END IF;
            j := j -> m[1];
        ELSIF left(p, 1) = '.' THEN
            m := regexp_match(p, '^\.([^.\[]+)(.*)$');
            IF m IS NULL THEN
                RAISE EXCEPTION 'bad JSON path: %', path;
            END IF;
            j := j -> m[1];
        ELSIF p ~ '^\[[0-9]+\]' THEN
            m := regexp_match(p, '^\[([0-9]+)\](.*)$');
            j := CASE WHEN json_typeof(j) = 'array' THEN j -> m[1]::int END;
        ELSIF p ~ '^\[#-[0-9]+\]' THEN
            m := regexp_match(p, '^\[#-([0-9]+)\](.*)$');
            IF json_typeof(j) = 'array' THEN
                k := json_array_length(j) - m[1]::int;
                j := CASE WHEN k >= 0 THEN j -> k END;
            ELSE
                j := NULL;
            END IF;
        ELSE
            RAISE EXCEPTION 'bad JSON path: %', path;
        END IF;
        IF j IS NULL THEN
            RETURN NULL;
        END IF;
        p := m[2];
    END LOOP;
    RETURN CASE json_typeof(j)
        WHEN 'string' THEN j #>> '{}'
        WHEN 'number' THEN CASE
            WHEN btrim(j::text) ~ '^-?[0-9]{1,18}$' THEN btrim(j::text)::bigint::text
            ELSE btrim(j::text)
        END
        WHEN 'boolean' THEN CASE WHEN btrim(j::text) = 'true' THEN '1' ELSE '0' END
        WHEN 'null' THEN NULL
        ELSE j::text
    END;
END
$$;

-- Scalar max(a, b) and min(a, b) of integers: NULL if either is NULL
-- (GREATEST and LEAST skip NULLs; SQLite's scalar max and min do not).
CREATE FUNCTION max(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT GREATEST(a, b) $$;

CREATE FUNCTION min(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT LEAST(a, b) $$;

-- Aggregates over conditions, which SQLite takes as the integers 0 and 1:
-- sum(boolean) (the number true, NULL over no row), max(boolean) and
-- min(boolean) (1 or 0, NULL over no row), all as BIGINT.
CREATE FUNCTION sqlite_bool_sum_step(acc bigint, v boolean) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v IS NULL THEN acc ELSE COALESCE(acc, 0) + v::int END $$;

CREATE FUNCTION sqlite_bool_max_step(acc bigint, v boolean) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v IS NULL THEN acc ELSE GREATEST(COALESCE(acc, 0), v::int) END $$;

CREATE FUNCTION sqlite_bool_min_step(acc bigint, v boolean) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v IS NULL THEN acc ELSE LEAST(COALESCE(acc, 1), v::int) END $$;

CREATE AGGREGATE sum(boolean) (SFUNC = sqlite_bool_sum_step, STYPE = bigint);
CREATE AGGREGATE max(boolean) (SFUNC = sqlite_bool_max_step, STYPE = bigint);
CREATE AGGREGATE min(boolean) (SFUNC = sqlite_bool_min_step, STYPE = bigint);

-- group_concat(X [, separator]): the non-NULL values joined (',' by
-- default, '' for a NULL separator), NULL over no value; in no set order,
-- as in SQLite.
CREATE FUNCTION sqlite_group_concat_step(acc text, v text, sep text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v IS NULL THEN acc WHEN acc IS NULL THEN v ELSE acc || COALESCE(sep, '') || v END $$;

CREATE FUNCTION sqlite_group_concat_step(acc text, v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v IS NULL THEN acc WHEN acc IS NULL THEN v ELSE acc || ',' || v END $$;

CREATE AGGREGATE group_concat(text, text) (SFUNC = sqlite_group_concat_step, STYPE = text);
CREATE AGGREGATE group_concat(text) (SFUNC = sqlite_group_concat_step, STYPE = text);

-- =====================================================================
-- Tables (columns in SQLite's order, those added later last)
-- =====================================================================

-- Version 1 (schema.sql), devices as rebuilt by version 4 and 9.
CREATE TABLE devices (
    device_id           TEXT COLLATE "C" PRIMARY KEY,
    kind                TEXT COLLATE "C" NOT NULL CHECK (kind IN ('field', 'dock', 'recorder')),
    public_key          TEXT COLLATE "C",
    state               TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'approved', 'revoked')),
    role                TEXT COLLATE "C",
    officer_id          TEXT COLLATE "C",
    unit_code           TEXT COLLATE "C",
    domain              TEXT COLLATE "C",
    software            TEXT COLLATE "C",
    firmware            TEXT COLLATE "C",
    config_version      TEXT COLLATE "C",
    first_seen          TEXT COLLATE "C" NOT NULL,
    changed_at          TEXT COLLATE "C" NOT NULL,
    last_seen           TEXT COLLATE "C",
    online              BIGINT NOT NULL DEFAULT 0,
    status              TEXT COLLATE "C",
    battery_pct         BIGINT,
    storage_free_bytes  BIGINT,
    storage_total_bytes BIGINT,
    clock_offset_ms     BIGINT,
    backlog_records     BIGINT,
    backlog_bytes       BIGINT,
    docked_in           TEXT COLLATE "C",
    device_class        TEXT COLLATE "C"
);

-- Every verified record, in hub order (hub_seq, handed out by the store),
-- with the exact signed bytes; as rebuilt by version 3, with the filter
-- columns of version 4.
CREATE TABLE records (
    hub_seq     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id          TEXT COLLATE "C" NOT NULL UNIQUE,
    device_id   TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    agent_id    TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    hash        TEXT COLLATE "C" NOT NULL,
    prev_hash   TEXT COLLATE "C" NOT NULL,
    body        BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    signer_key  TEXT COLLATE "C" NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL,
    occurred_at TEXT COLLATE "C",
    officer_id  TEXT COLLATE "C",
    unit_code   TEXT COLLATE "C",
    domain      TEXT COLLATE "C",
    case_number TEXT COLLATE "C",
    UNIQUE (device_id, agent_id, seq)
);

CREATE TABLE alerts (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind          TEXT COLLATE "C" NOT NULL,
    device_id     TEXT COLLATE "C",
    seq_from      BIGINT,
    seq_to        BIGINT,
    detail        TEXT COLLATE "C" NOT NULL,
    raised_at     TEXT COLLATE "C" NOT NULL,
    visible_after TEXT COLLATE "C" NOT NULL,
    resolved_at   TEXT COLLATE "C",
    agent_id      TEXT COLLATE "C",
    file_from     BIGINT,
    file_to       BIGINT,
    officer_id    TEXT COLLATE "C",
    subject       TEXT COLLATE "C"
);

CREATE TABLE rejects (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at          TEXT COLLATE "C" NOT NULL,
    topic       TEXT COLLATE "C" NOT NULL,
    reason      TEXT COLLATE "C" NOT NULL,
    detail      TEXT COLLATE "C" NOT NULL
);

-- Version 2 (media.sql), with version 3's columns. `rowid` stands for
-- SQLite's rowid, which queries order by (insertion order).
CREATE TABLE media (
    record_id   TEXT COLLATE "C" PRIMARY KEY,
    agent_id    TEXT COLLATE "C" NOT NULL,
    device_id   TEXT COLLATE "C" NOT NULL,
    sha256      TEXT COLLATE "C" NOT NULL,
    size        BIGINT NOT NULL,
    mime        TEXT COLLATE "C" NOT NULL,
    state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('awaiting', 'stored', 'failed')),
    mismatches  BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT COLLATE "C" NOT NULL,
    stored_at   TEXT COLLATE "C",
    detail      TEXT COLLATE "C",
    file_index  BIGINT,
    recopy_of   TEXT COLLATE "C",
    rowid       BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE blobs (
    sha256     TEXT COLLATE "C" PRIMARY KEY,
    size       BIGINT NOT NULL,
    stored_at  TEXT COLLATE "C" NOT NULL
);

-- Version 3 (chains.sql).
CREATE TABLE files_reported_missing (
    record_id   TEXT COLLATE "C" PRIMARY KEY,
    device_id   TEXT COLLATE "C" NOT NULL,
    agent_id    TEXT COLLATE "C" NOT NULL,
    from_index  BIGINT NOT NULL,
    to_index    BIGINT NOT NULL
);

-- Version 4 (fleet.sql).
CREATE TABLE units (
    unit_code     TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL,
    district_code TEXT COLLATE "C",
    domain        TEXT COLLATE "C",
    parent_code   TEXT COLLATE "C",
    updated_at    TEXT COLLATE "C" NOT NULL
);

CREATE TABLE officers (
    officer_id    TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL,
    unit_code     TEXT COLLATE "C",
    domain        TEXT COLLATE "C",
    active        BIGINT NOT NULL DEFAULT 1,
    updated_at    TEXT COLLATE "C" NOT NULL
);

CREATE TABLE assignments (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    device_id   TEXT COLLATE "C" NOT NULL,
    officer_id  TEXT COLLATE "C",
    unit_code   TEXT COLLATE "C",
    domain      TEXT COLLATE "C",
    from_at     TEXT COLLATE "C" NOT NULL,
    to_at       TEXT COLLATE "C",
    source      TEXT COLLATE "C" NOT NULL,
    by_whom     TEXT COLLATE "C" NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    role        TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'operator', 'platform', 'auditor')),
    token_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  TEXT COLLATE "C" NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL,
    revoked_at  TEXT COLLATE "C"
);

-- The audit log. `seq` is given by the store (the last one + 1, in the
-- transaction that appends), never left to the database.
CREATE TABLE audit (
    seq           BIGINT PRIMARY KEY,
    at            TEXT COLLATE "C" NOT NULL,
    actor         TEXT COLLATE "C" NOT NULL,
    role          TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,
    target        TEXT COLLATE "C" NOT NULL,
    remote        TEXT COLLATE "C" NOT NULL,
    detail        TEXT COLLATE "C" NOT NULL,
    first_hub_seq BIGINT,
    last_hub_seq  BIGINT,
    prev_hash     TEXT COLLATE "C" NOT NULL,
    hash          TEXT COLLATE "C" NOT NULL,
    signature     TEXT COLLATE "C" NOT NULL,
    reads         TEXT COLLATE "C" NOT NULL DEFAULT ''
);

CREATE TABLE audit_reads (
    hub_seq     BIGINT NOT NULL,
    audit_seq   BIGINT NOT NULL,
    PRIMARY KEY (hub_seq, audit_seq)
);

-- Version 5 (coverage.sql), with version 6's columns.
CREATE TABLE recordings (
    record_id        TEXT COLLATE "C" PRIMARY KEY,
    device_id        TEXT COLLATE "C" NOT NULL,
    officer_id       TEXT COLLATE "C",
    unit_code        TEXT COLLATE "C",
    start_ms         BIGINT NOT NULL,
    end_ms           BIGINT NOT NULL,
    device_start_ms  BIGINT NOT NULL,
    device_end_ms    BIGINT NOT NULL,
    clock_offset_ms  BIGINT NOT NULL,
    domain           TEXT COLLATE "C",
    arrived_ms       BIGINT,
    duty_end_ms      BIGINT,
    late_alerted     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE actions (
    action_key   TEXT COLLATE "C" PRIMARY KEY,
    action_id    TEXT COLLATE "C" NOT NULL,
    device_id    TEXT COLLATE "C" NOT NULL,
    unit_code    TEXT COLLATE "C",
    domain       TEXT COLLATE "C",
    case_number  TEXT COLLATE "C",
    start_ms     BIGINT,
    end_ms       BIGINT,
    span_ms      BIGINT,
    covered_ms   BIGINT,
    covered      BIGINT,
    cause        TEXT COLLATE "C",
    judged_at    TEXT COLLATE "C",
    source       TEXT COLLATE "C" NOT NULL DEFAULT 'event',
    place        TEXT COLLATE "C",
    cell         TEXT COLLATE "C",
    alerted      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE action_officers (
    officer_id  TEXT COLLATE "C" NOT NULL,
    action_key  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (officer_id, action_key)
);

-- Version 6 (figures.sql).
CREATE TABLE coverage_policy (
    id                BIGINT PRIMARY KEY CHECK (id = 1),
    share_permille    BIGINT NOT NULL,
    drift_ms          BIGINT NOT NULL,
    timeliness_hours  BIGINT NOT NULL
);
INSERT INTO coverage_policy VALUES (1, 900, 60000, 24) ON CONFLICT DO NOTHING;

CREATE TABLE duties (
    duty_key     TEXT COLLATE "C" PRIMARY KEY,
    officer_id   TEXT COLLATE "C" NOT NULL,
    unit_code    TEXT COLLATE "C",
    domain       TEXT COLLATE "C",
    device_id    TEXT COLLATE "C",
    start_ms     BIGINT,
    end_ms       BIGINT,
    source       TEXT COLLATE "C" NOT NULL,
    heard_ms     BIGINT,
    alerted      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE duty_hours (
    duty_key     TEXT COLLATE "C" NOT NULL,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT NOT NULL,
    officer_id   TEXT COLLATE "C" NOT NULL,
    unit_code    TEXT COLLATE "C",
    domain       TEXT COLLATE "C",
    recorded_ms  BIGINT NOT NULL,
    cause        TEXT COLLATE "C",
    PRIMARY KEY (duty_key, start_ms)
);

CREATE TABLE recording_events (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    device_id    TEXT COLLATE "C" NOT NULL,
    officer_id   TEXT COLLATE "C",
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT
);

CREATE TABLE device_days (
    day        TEXT COLLATE "C" NOT NULL,
    device_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (day, device_id)
);

CREATE TABLE geo_points (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    cell        TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('action', 'recording')),
    officer_id  TEXT COLLATE "C",
    unit_code   TEXT COLLATE "C",
    domain      TEXT COLLATE "C"
);

-- Version 7 (coverage_days.sql).
CREATE TABLE coverage_days (
    day                          TEXT COLLATE "C" NOT NULL,
    unit_code                    TEXT COLLATE "C" NOT NULL,
    domain                       TEXT COLLATE "C" NOT NULL,
    officer_id                   TEXT COLLATE "C" NOT NULL,
    duties                       BIGINT NOT NULL,
    duties_heard                 BIGINT NOT NULL,
    on_duty_ms                   BIGINT NOT NULL,
    recorded_ms                  BIGINT NOT NULL,
    hours_clock_problem          BIGINT NOT NULL,
    hours_no_recorder_assigned   BIGINT NOT NULL,
    hours_media_not_arrived      BIGINT NOT NULL,
    hours_not_linked             BIGINT NOT NULL,
    hours_nothing_recorded       BIGINT NOT NULL,
    arrived_on_time              BIGINT NOT NULL,
    arrived_late                 BIGINT NOT NULL,
    records                      BIGINT NOT NULL,
    PRIMARY KEY (day, unit_code, domain, officer_id)
);

-- Days whose sums are stale (named by the triggers below).
CREATE TABLE coverage_stale_days (
    day  TEXT COLLATE "C" PRIMARY KEY
);

-- Version 8 (coverage_groups.sql).
CREATE TABLE coverage_day_groups (
    grouping                     TEXT COLLATE "C" NOT NULL CHECK (grouping IN ('all', 'unit', 'domain', 'officer')),
    day                          TEXT COLLATE "C" NOT NULL,
    key                          TEXT COLLATE "C" NOT NULL,
    officer_days                 BIGINT NOT NULL,
    officer_days_heard           BIGINT NOT NULL,
    on_duty_ms                   BIGINT NOT NULL,
    recorded_ms                  BIGINT NOT NULL,
    hours_clock_problem          BIGINT NOT NULL,
    hours_no_recorder_assigned   BIGINT NOT NULL,
    hours_media_not_arrived      BIGINT NOT NULL,
    hours_not_linked             BIGINT NOT NULL,
    hours_nothing_recorded       BIGINT NOT NULL,
    arrived_on_time              BIGINT NOT NULL,
    arrived_late                 BIGINT NOT NULL,
    records                      BIGINT NOT NULL,
    actions                      BIGINT NOT NULL,
    actions_covered              BIGINT NOT NULL,
    actions_clock_problem        BIGINT NOT NULL,
    actions_no_recorder_assigned BIGINT NOT NULL,
    actions_media_not_arrived    BIGINT NOT NULL,
    actions_not_linked           BIGINT NOT NULL,
    actions_nothing_recorded     BIGINT NOT NULL,
    PRIMARY KEY (grouping, day, key)
);

-- Version 9 (recorder_config.sql). `version` is given by the store (the
-- larger of the last one + 1 and the time in ms), never left to the database.
CREATE TABLE config_layers (
    scope      TEXT COLLATE "C" NOT NULL CHECK (scope IN ('fleet', 'unit', 'class', 'device')),
    key        TEXT COLLATE "C" NOT NULL,
    overrides  TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    by_whom    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE config_assignments (
    version     BIGINT PRIMARY KEY,
    device_id   TEXT COLLATE "C" NOT NULL,
    config_hash TEXT COLLATE "C" NOT NULL,
    config      TEXT COLLATE "C" NOT NULL,
    message     BYTEA NOT NULL,
    issued_at   TEXT COLLATE "C" NOT NULL,
    by_whom     TEXT COLLATE "C" NOT NULL,
    rollout     TEXT COLLATE "C" NOT NULL
);

CREATE TABLE config_status (
    device_id        TEXT COLLATE "C" PRIMARY KEY,
    version          BIGINT NOT NULL,
    config_hash      TEXT COLLATE "C" NOT NULL,
    state            TEXT COLLATE "C" NOT NULL CHECK (state IN ('assigned', 'delivered', 'applied', 'failed')),
    reason           TEXT COLLATE "C",
    state_at         TEXT COLLATE "C" NOT NULL,
    published_at     TEXT COLLATE "C",
    running_hash     TEXT COLLATE "C",
    running_at       TEXT COLLATE "C",
    reported_by      TEXT COLLATE "C",
    reported_at      TEXT COLLATE "C",
    applied_hash     TEXT COLLATE "C",
    applied_at       TEXT COLLATE "C",
    first_applied_at TEXT COLLATE "C",
    firmware_image   TEXT COLLATE "C",
    firmware_state   TEXT COLLATE "C" CHECK (firmware_state IN ('assigned', 'installed', 'failed')),
    firmware_reason  TEXT COLLATE "C",
    firmware_at      TEXT COLLATE "C"
);

CREATE TABLE firmware_images (
    version  TEXT COLLATE "C" PRIMARY KEY,
    sha256   TEXT COLLATE "C" NOT NULL,
    size     BIGINT NOT NULL,
    added_at TEXT COLLATE "C" NOT NULL,
    by_whom  TEXT COLLATE "C" NOT NULL
);

CREATE TABLE firmware_targets (
    device_id TEXT COLLATE "C" PRIMARY KEY,
    version   TEXT COLLATE "C" NOT NULL REFERENCES firmware_images (version),
    set_at    TEXT COLLATE "C" NOT NULL,
    by_whom   TEXT COLLATE "C" NOT NULL
);

-- Version 10 (credentials.sql).
CREATE TABLE device_credentials (
    device_id     TEXT COLLATE "C" PRIMARY KEY,
    password_hash TEXT COLLATE "C" NOT NULL,
    issued_at     TEXT COLLATE "C" NOT NULL,
    by_whom       TEXT COLLATE "C" NOT NULL
);

-- =====================================================================
-- Indexes (the final set of SQLite's, same names)
-- =====================================================================

CREATE INDEX alerts_open ON alerts (device_id, kind) WHERE resolved_at IS NULL;
CREATE INDEX alerts_by_subject ON alerts (subject) WHERE subject IS NOT NULL;

CREATE INDEX media_by_sha ON media (sha256);
CREATE INDEX media_awaiting ON media (state) WHERE state = 'awaiting';
CREATE INDEX media_by_file_index ON media (device_id, file_index) WHERE file_index IS NOT NULL;

CREATE INDEX files_reported_missing_by_device ON files_reported_missing (device_id);

CREATE INDEX assignments_by_device ON assignments (device_id, from_at);
CREATE INDEX assignments_by_officer ON assignments (officer_id, from_at);

CREATE INDEX audit_by_target ON audit (target);

CREATE INDEX records_by_device ON records (device_id, hub_seq);
CREATE INDEX records_by_agent ON records (agent_id, hub_seq);
CREATE INDEX records_by_officer ON records (officer_id, hub_seq);
CREATE INDEX records_by_unit ON records (unit_code, hub_seq);
CREATE INDEX records_by_domain ON records (domain, hub_seq);
CREATE INDEX records_by_case ON records (case_number, hub_seq) WHERE case_number IS NOT NULL;
CREATE INDEX records_by_officer_time ON records (officer_id, occurred_at);
CREATE INDEX records_by_time ON records (occurred_at, unit_code, domain, officer_id);

CREATE INDEX recordings_by_officer ON recordings (officer_id, start_ms);
CREATE INDEX recordings_by_device ON recordings (device_id, start_ms);
CREATE INDEX recordings_by_end
    ON recordings (end_ms, unit_code, domain, officer_id, arrived_ms, duty_end_ms);
CREATE INDEX recordings_awaited ON recordings (end_ms) WHERE arrived_ms IS NULL AND late_alerted = 0;
CREATE INDEX recordings_by_officer_raw ON recordings (officer_id, device_start_ms);
CREATE INDEX recordings_pending
    ON recordings (end_ms, unit_code, domain, officer_id, duty_end_ms) WHERE arrived_ms IS NULL;

CREATE INDEX actions_to_alert ON actions (end_ms) WHERE covered = 0 AND alerted = 0;
CREATE INDEX actions_by_start
    ON actions (start_ms, unit_code, domain, covered, cause, span_ms);

CREATE INDEX action_officers_by_action ON action_officers (action_key, officer_id);

CREATE INDEX duties_by_officer ON duties (officer_id, start_ms);
CREATE INDEX duties_by_start
    ON duties (start_ms, unit_code, domain, officer_id, heard_ms);
CREATE INDEX duties_unheard ON duties (start_ms) WHERE heard_ms IS NULL AND alerted = 0;

CREATE INDEX duty_hours_by_start
    ON duty_hours (start_ms, unit_code, domain, officer_id, cause, recorded_ms, end_ms);
CREATE INDEX duty_hours_by_officer ON duty_hours (officer_id, start_ms);

CREATE INDEX recording_events_by_device ON recording_events (device_id, start_ms);
CREATE INDEX recording_events_by_officer ON recording_events (officer_id, start_ms);

CREATE INDEX device_days_by_device ON device_days (device_id, day);

CREATE INDEX geo_points_by_time
    ON geo_points (kind, at_ms, unit_code, domain, officer_id, cell);
CREATE INDEX geo_points_by_cell ON geo_points (kind, cell, at_ms);
CREATE INDEX geo_points_by_cell_unit ON geo_points (kind, cell, unit_code, at_ms);
CREATE INDEX geo_points_by_cell_domain ON geo_points (kind, cell, domain, at_ms);
CREATE INDEX geo_points_by_cell_officer ON geo_points (kind, cell, officer_id, at_ms);

CREATE INDEX config_assignments_device ON config_assignments (device_id, version);

-- =====================================================================
-- Triggers
-- =====================================================================

-- The audit log is append-only (version 4). Raised as an integrity
-- violation (SQLSTATE 23000), as SQLite's RAISE(ABORT) is a constraint error.
CREATE FUNCTION audit_append_only() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER audit_reads_no_update BEFORE UPDATE ON audit_reads
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_reads_no_delete BEFORE DELETE ON audit_reads
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

-- Every change to what the day sums are summed from names its China
-- Standard Time day stale (versions 7 and 8). SQLite's INSERT OR IGNORE
-- skips a duplicate day and also a NULL one (the key is NOT NULL): hence
-- ON CONFLICT DO NOTHING and `d IS NOT NULL`.

-- duties: the day of start_ms.
CREATE FUNCTION duties_stale_ins() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (VALUES (date(NEW.start_ms / 1000 + 28800, 'unixepoch'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION duties_stale_del() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (VALUES (date(OLD.start_ms / 1000 + 28800, 'unixepoch'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION duties_stale_upd() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (
            SELECT date(NEW.start_ms / 1000 + 28800, 'unixepoch') AS d WHERE NEW.start_ms IS NOT NULL
            UNION SELECT date(OLD.start_ms / 1000 + 28800, 'unixepoch') WHERE OLD.start_ms IS NOT NULL) v
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER duties_stale_ins AFTER INSERT ON duties
    FOR EACH ROW WHEN (NEW.start_ms IS NOT NULL) EXECUTE FUNCTION duties_stale_ins();
CREATE TRIGGER duties_stale_del AFTER DELETE ON duties
    FOR EACH ROW WHEN (OLD.start_ms IS NOT NULL) EXECUTE FUNCTION duties_stale_del();
CREATE TRIGGER duties_stale_upd
    AFTER UPDATE OF start_ms, officer_id, unit_code, domain, heard_ms ON duties
    FOR EACH ROW EXECUTE FUNCTION duties_stale_upd();

-- duty_hours: the day of start_ms.
CREATE FUNCTION duty_hours_stale_ins() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (VALUES (date(NEW.start_ms / 1000 + 28800, 'unixepoch'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION duty_hours_stale_del() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (VALUES (date(OLD.start_ms / 1000 + 28800, 'unixepoch'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION duty_hours_stale_upd() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT DISTINCT d FROM (VALUES (date(NEW.start_ms / 1000 + 28800, 'unixepoch')),
                                       (date(OLD.start_ms / 1000 + 28800, 'unixepoch'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER duty_hours_stale_ins AFTER INSERT ON duty_hours
    FOR EACH ROW EXECUTE FUNCTION duty_hours_stale_ins();
CREATE TRIGGER duty_hours_stale_del AFTER DELETE ON duty_hours
    FOR EACH ROW EXECUTE FUNCTION duty_hours_stale_del();
CREATE TRIGGER duty_hours_stale_upd AFTER UPDATE ON duty_hours
    FOR EACH ROW EXECUTE FUNCTION duty_hours_stale_upd();

-- recordings: the day of end_ms.
CREATE FUNCTION recordings_stale_ins() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (VALUES (date(NEW.end_ms / 1000 + 28800, 'unixepoch'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION recordings_stale_del() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (VALUES (date(OLD.end_ms / 1000 + 28800, 'unixepoch'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION recordings_stale_upd() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT DISTINCT d FROM (VALUES (date(NEW.end_ms / 1000 + 28800, 'unixepoch')),
                                       (date(OLD.end_ms / 1000 + 28800, 'unixepoch'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER recordings_stale_ins AFTER INSERT ON recordings
    FOR EACH ROW EXECUTE FUNCTION recordings_stale_ins();
CREATE TRIGGER recordings_stale_del AFTER DELETE ON recordings
    FOR EACH ROW EXECUTE FUNCTION recordings_stale_del();
CREATE TRIGGER recordings_stale_upd
    AFTER UPDATE OF end_ms, officer_id, unit_code, domain, arrived_ms, duty_end_ms ON recordings
    FOR EACH ROW EXECUTE FUNCTION recordings_stale_upd();

-- records: the day of occurred_at (RFC 3339 text) + 8 hours; none when
-- occurred_at is NULL or no time.
CREATE FUNCTION records_stale_ins() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (VALUES (date(NEW.occurred_at, '+8 hours'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION records_stale_del() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (VALUES (date(OLD.occurred_at, '+8 hours'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION records_stale_upd() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT DISTINCT d FROM (VALUES (date(NEW.occurred_at, '+8 hours')),
                                       (date(OLD.occurred_at, '+8 hours'))) v (d)
        WHERE d IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER records_stale_ins AFTER INSERT ON records
    FOR EACH ROW EXECUTE FUNCTION records_stale_ins();
CREATE TRIGGER records_stale_del AFTER DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION records_stale_del();
CREATE TRIGGER records_stale_upd
    AFTER UPDATE OF occurred_at, officer_id, unit_code, domain ON records
    FOR EACH ROW EXECUTE FUNCTION records_stale_upd();

-- actions and action_officers: the day of the action's start_ms. SQLite's
-- triggers insert only a day not yet named (plain INSERT, as an upsert
-- overrides a trigger's OR IGNORE there); ON CONFLICT DO NOTHING is added
-- for a concurrent transaction naming the same day first.
CREATE FUNCTION actions_stale_ins() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (SELECT date(NEW.start_ms / 1000 + 28800, 'unixepoch') AS d) v
        WHERE d NOT IN (SELECT day FROM coverage_stale_days)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION actions_stale_del() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (SELECT date(OLD.start_ms / 1000 + 28800, 'unixepoch') AS d) v
        WHERE d NOT IN (SELECT day FROM coverage_stale_days)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION actions_stale_upd() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT d FROM (
            SELECT date(NEW.start_ms / 1000 + 28800, 'unixepoch') AS d WHERE NEW.start_ms IS NOT NULL
            UNION SELECT date(OLD.start_ms / 1000 + 28800, 'unixepoch') WHERE OLD.start_ms IS NOT NULL) v
        WHERE d NOT IN (SELECT day FROM coverage_stale_days)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER actions_stale_ins AFTER INSERT ON actions
    FOR EACH ROW WHEN (NEW.start_ms IS NOT NULL) EXECUTE FUNCTION actions_stale_ins();
CREATE TRIGGER actions_stale_del AFTER DELETE ON actions
    FOR EACH ROW WHEN (OLD.start_ms IS NOT NULL) EXECUTE FUNCTION actions_stale_del();
CREATE TRIGGER actions_stale_upd
    AFTER UPDATE OF start_ms, span_ms, covered, cause, unit_code, domain ON actions
    FOR EACH ROW EXECUTE FUNCTION actions_stale_upd();

CREATE FUNCTION action_officers_stale_ins() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT DISTINCT date(a.start_ms / 1000 + 28800, 'unixepoch') FROM actions a
        WHERE a.action_key = NEW.action_key AND a.start_ms IS NOT NULL
          AND date(a.start_ms / 1000 + 28800, 'unixepoch') NOT IN (SELECT day FROM coverage_stale_days)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION action_officers_stale_del() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO coverage_stale_days (day)
        SELECT DISTINCT date(a.start_ms / 1000 + 28800, 'unixepoch') FROM actions a
        WHERE a.action_key = OLD.action_key AND a.start_ms IS NOT NULL
          AND date(a.start_ms / 1000 + 28800, 'unixepoch') NOT IN (SELECT day FROM coverage_stale_days)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER action_officers_stale_ins AFTER INSERT ON action_officers
    FOR EACH ROW EXECUTE FUNCTION action_officers_stale_ins();
CREATE TRIGGER action_officers_stale_del AFTER DELETE ON action_officers
    FOR EACH ROW EXECUTE FUNCTION action_officers_stale_del();
