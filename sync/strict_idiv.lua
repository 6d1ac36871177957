-- Shared by strict_bucket.lua and strict_bucket_refund.lua (scripts/embed.py inlines it where a
-- script says --#include strict_idiv.lua): exact integer division of doubles below 2^53, and the
-- "zi:r" state parser.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local function zparse(s)
  local zi, r = string.match(s or '0', '^(%-?%d+):?(%d*)$')
  return tonumber(zi) or 0, tonumber(r) or 0
end
