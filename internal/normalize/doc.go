// Package normalize turns customer information into the values Meta's
// Conversions API expects in user_data: the lowercase hex SHA-256 of a
// normalized plaintext, per field (spec/meta-capi.md §3). It is pure: no
// I/O, no global mutable state (the phone and country tables are built
// once, on first use, and only read after), and every function is safe for
// concurrent use.
//
// # Steps common to every field
//
//  1. A value that is already hashed passes through: exactly 64 hex digits
//     after trimming (lowercased), or "<64 hex>.<appendix>" from Meta's
//     parameter builder (unchanged). 32 hex digits are not treated as
//     hashed: a UUID without dashes looks the same (spec §3.2).
//  2. Unicode NFC, so "Vale\u0301ry" and "Val\u00e9ry" hash alike (spec
//     §3.3). This differs on purpose from the Node SDK, which hashes NFD as
//     given.
//  3. Trimming of JavaScript white space (as String.prototype.trim: U+FEFF
//     and NBSP included, U+0085 and U+200B not) and full Unicode lowercasing
//     with special casing (final sigma, U+0130 to "i\u0307"), matching the
//     SDK's toLowerCase.
//  4. The field rule below. An empty or invalid result drops the value
//     (ErrEmpty or *InvalidError); the hash of "" or a null is never sent.
//
// # Field rules
//
//   - em: one @, a local part without white space, controls or
//     <>()[]\,;:" and without edge or doubled dots; a domain of two or more
//     labels of letters (any script), digits and inner hyphens, with a
//     top-level label of 2+ characters. No Gmail dot or plus folding.
//   - ph: the E.164 digits without "+". Digits of any script are read;
//     punctuation, letters and "tel:" are ignored; an extension (# , ; ~ x
//     ext after 7+ digits) and a trailing ".0" are dropped. "+" or a leading
//     "00" keeps the number's own calling code; otherwise the region (the
//     event's country, else Options.Region) supplies it, its international
//     prefix (011 in the US) is honoured and its trunk prefix (0, or 1 in
//     NANPA) dropped, also after "+44 (0)". Without any region the digits
//     must already start with a calling code. The result has 7 to 15
//     digits, a national number that is not too short or local-only, and,
//     when the calling code came from the region, a possible length for it.
//     Common shapes are decided from libphonenumber's metadata without
//     parsing; the rest go through phonenumbers.Parse, with the same result.
//   - fn, ln, ct: letters of any script and combining marks only: no white
//     space, punctuation, symbols, emoji or digits ("Mary-Jane" → maryjane,
//     "München" → münchen, "東京" kept).
//   - db: YYYYMMDD from YYYYMMDD, YYYY-MM-DD, YYYY/M/D, YYYY.MM.DD, "YYYY MM
//     DD", M/D/YYYY, D.M.YYYY, M/D/YY, ISO date-times (the time is cut), and
//     English month names ("February 16 1997", "16 Feb 1997", "Feb. 16th,
//     1997"); any non-alphanumeric separator and digits of any script. The
//     year must be 1900 to the current year (Options.Now) and the day must
//     exist. A two-digit year is 20YY unless that is after this year, then
//     19YY. Eight digits that are not a valid YYYYMMDD are read as MMDDYYYY
//     or DDMMYYYY.
//   - Day and month: when both numbers are 12 or less, Options.DateOrder
//     decides. DateOrderAuto reads month first when the region is empty
//     (Meta's own example 2/16/1997 is month first) or one of us, pr, gu,
//     vi, as, mp, um, ph, fm, pw, mh, and day first elsewhere. A number
//     over 12 is always the day, whatever the order.
//   - ge: letters a-z kept ("f." → f), then f, female, woman → f and m,
//     male, man → m; anything else is dropped.
//   - st: letters only. For the US and Canada (or no region) full names,
//     common abbreviations ("Calif.", "Tex."), "US-CA" and "New York State"
//     map to the 2-letter code; an unknown value is dropped when the region
//     is us or ca. Other countries keep the full name, never truncated.
//   - zp: US (region us, or no region and a bare 5- or 9-digit code): the
//     first 5 digits. Elsewhere lowercase letters and digits with spaces,
//     dashes and punctuation removed (no cut at the dash: JP 100-0001 →
//     1000001), an old country prefix dropped (D-10115 → 10115), 2+
//     characters.
//   - country: ISO 3166-1 alpha-2, lowercase, from alpha-2, alpha-3, the
//     English name, the local name (Deutschland, España, Sverige, 日本) and
//     common aliases (UK and England → gb, USA and America → us).
//   - external_id: the canonical form is the value lowercased with all white
//     space removed, then hashed: the parameter builder's form. Use it on
//     every channel, or send the same 64-hex string to the pixel.
//
// HashUserData applies all of this to a whole user_data: the event's own
// country is the region for ph, st, zp and db, duplicates are removed and
// invalid values dropped one by one.
package normalize
