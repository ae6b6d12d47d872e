-- dataverse.json: the lossless JSON codec (docs/JSON.md).
local json = require("dataverse").json
local cjson = require "cjson"

-- Asserts that f(...) raises exactly the message `msg` (no position prefix is added by the codec).
local function fails_with(msg, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error: " .. msg)
  assert.equals(msg, err)
end

describe("dataverse.json", function()
  it("is the module exposed as require('dataverse').json", function()
    assert.equals(require "dataverse.json", json)
    assert.is_function(json.decode)
    assert.is_function(json.encode)
  end)

  describe("decode numbers", function()
    it("reads integers as Lua integers over the whole int64 range", function()
      local cases = {
        ["1"] = 1, ["-1"] = -1, ["0"] = 0, ["-0"] = 0,
        ["9007199254740993"] = 9007199254740993,
        ["9223372036854775807"] = math.maxinteger,
        ["-9223372036854775808"] = math.mininteger,
        ["1000000000000000000"] = 1000000000000000000,
      }
      for text, want in pairs(cases) do
        local v = json.decode(text)
        assert.equals("integer", math.type(v), text)
        assert.equals(want, v, text)
      end
      -- 2^53 + 1 is not a double: only an integer can hold it.
      assert.equals(9007199254740992, json.decode("9007199254740993") - 1)
    end)

    it("reads integers beyond int64 as floats", function()
      local v = json.decode("9223372036854775808")
      assert.equals("float", math.type(v))
      assert.equals(2.0 ^ 63, v)
      v = json.decode("-9223372036854775809")
      assert.equals("float", math.type(v))
      assert.equals(-(2.0 ^ 63), v)
      assert.equals(1e30, json.decode("1000000000000000000000000000000"))
    end)

    it("reads numbers with a fraction or an exponent as floats", function()
      local cases = { ["1.5"] = 1.5, ["1e3"] = 1000.0, ["1.0"] = 1.0, ["-2.5E-3"] = -0.0025,
        ["0.1"] = 0.1, ["1E+2"] = 100.0, ["123456789.123456789"] = 123456789.123456789,
        ["2.2250738585072014e-308"] = 2.2250738585072014e-308, ["5e-324"] = 5e-324,
        ["1.7976931348623157e308"] = 1.7976931348623157e308,
        ["0.30000000000000004"] = 0.30000000000000004,
        ["3.141592653589793238462643383279"] = math.pi }
      for text, want in pairs(cases) do
        local v = json.decode(text)
        assert.equals("float", math.type(v), text)
        assert.equals(want, v, text)
      end
      local z = json.decode("-0.0")
      assert.equals("float", math.type(z))
      assert.equals(-math.huge, 1 / z)
    end)

    it("reads numbers exactly like the C library would, digit for digit", function()
      -- Long mantissas and large exponents take the strtod path; short ones the fast path.
      for _, text in ipairs { "0.1", "123.456", "9007199254740993.0", "1.00000000000000011102230246251565",
        "4.9406564584124654e-324", "1e22", "1e23", "123e-20", "8.98846567431158e307" } do
        assert.equals(tonumber(text), json.decode(text), text)
      end
    end)
  end)

  describe("decode strings", function()
    it("keeps UTF-8 as is and decodes the simple escapes", function()
      assert.equals("Zürich – 東京", json.decode('"Zürich – 東京"'))
      assert.equals('a"b\\c/d\b\f\n\r\t', json.decode([["a\"b\\c\/d\b\f\n\r\t"]]))
      assert.equals('W/"1234"', json.decode([["W/\"1234\""]]))
    end)

    it("decodes \\u escapes to UTF-8, surrogate pairs to one code point", function()
      assert.equals("é", json.decode([["\u00e9"]]))
      assert.equals("A\0B", json.decode([["A\u0000B"]]))
      assert.equals("€", json.decode([["\u20AC"]]))
      assert.equals("😀", json.decode([["\ud83d\ude00"]]))
      assert.equals(utf8.char(0x10FFFF), json.decode([["\uDBFF\uDFFF"]]))
    end)

    it("replaces a lone surrogate with U+FFFD", function()
      assert.equals("\u{FFFD}x", json.decode([["\ud83dx"]]))
      assert.equals("\u{FFFD}", json.decode([["\ude00"]]))
      assert.equals("\u{FFFD}\u{FFFD}", json.decode([["\ud83d\ud83d"]]))
    end)

    it("reads long strings with and without escapes", function()
      local plain = string.rep("abcdefgh", 1000)
      assert.equals(plain, json.decode('"' .. plain .. '"'))
      local escaped = string.rep('x\\"y', 500)
      assert.equals(string.rep('x"y', 500), json.decode('"' .. escaped .. '"'))
    end)
  end)

  describe("decode structures", function()
    it("builds tables for objects and arrays", function()
      local v = json.decode(' { "a" : [ 1 , true , false , null , "s" , { } , [ ] ] , "b" : {"c": 2} } ')
      assert.equals(1, v.a[1])
      assert.is_true(v.a[2])
      assert.is_false(v.a[3])
      assert.equals(json.null, v.a[4])
      assert.equals("s", v.a[5])
      assert.same({}, v.a[6])
      assert.equals(0, #v.a[7])
      assert.equals(7, #v.a)
      assert.equals(2, v.b.c)
    end)

    it("marks arrays, empty or not, so that they encode back as arrays", function()
      local v = json.decode('{"empty":[],"full":[1,2],"obj":{}}')
      assert.equals(json.array_mt, getmetatable(v.empty))
      assert.equals(json.array_mt, getmetatable(v.full))
      assert.is_nil(getmetatable(v.obj))
      assert.equals("[]", json.encode(json.decode("[]")))
      assert.equals('{"empty":[],"full":[1,2],"obj":{}}', json.encode(v))
      v.full[1], v.full[2] = nil, nil
      assert.equals("[]", json.encode(v.full))
    end)

    it("reads arrays and objects larger than one internal batch", function()
      local items, fields = {}, {}
      for i = 1, 1000 do
        items[i] = tostring(i)
        fields[i] = string.format('"k%d":%d', i, i)
      end
      local a = json.decode("[" .. table.concat(items, ",") .. "]")
      assert.equals(1000, #a)
      for i = 1, 1000 do assert.equals(i, a[i]) end
      local o = json.decode("{" .. table.concat(fields, ",") .. "}")
      local n = 0
      for k, v in pairs(o) do
        n = n + 1
        assert.equals("k" .. v, k)
      end
      assert.equals(1000, n)
    end)

    it("keeps the last of duplicate keys", function()
      assert.equals(2, json.decode('{"a":1,"a":2}').a)
    end)

    it("accepts a UTF-8 byte order mark and surrounding whitespace", function()
      assert.equals(5, json.decode("\xEF\xBB\xBF 5 \n"))
      assert.equals("x", json.decode('\t\r\n "x"'))
    end)

    it("accepts nesting up to 1000 levels", function()
      local v = json.decode(string.rep("[", 1000) .. string.rep("]", 1000))
      for _ = 1, 999 do v = v[1] end
      assert.same({}, v)
      assert.equals(0, #v)
    end)
  end)

  describe("null", function()
    it("is the same value as cjson.null, both ways", function()
      assert.equals(cjson.null, json.null)
      assert.equals(json.null, json.decode("null"))
      assert.equals(cjson.null, json.decode('{"a":null}').a)
      assert.equals("null", json.encode(json.null))
      assert.equals('{"a":null}', json.encode { a = cjson.null })
      assert.equals("null", json.encode(nil))
      assert.equals(cjson.null, cjson.decode(json.encode { json.null })[1])
    end)
  end)

  describe("decode errors", function()
    local cases = {
      { "", "json: expected a value at offset 0, found end of input" },
      { "   ", "json: expected a value at offset 3, found end of input" },
      { "{\"accountid\":1,\"name\" 2}", "json: expected ':' at offset 22, found '2'" },
      { "[1,]", "json: expected a value at offset 3, found ']'" },
      { "[1 2]", "json: expected ',' or ']' at offset 3, found '2'" },
      { "[1", "json: expected ',' or ']' at offset 2, found end of input" },
      { '{"a":1 "b":2}', "json: expected ',' or '}' at offset 7, found '\"'" },
      { '{"a":1,}', "json: expected a string key at offset 7, found '}'" },
      { "{1:2}", "json: expected a string key or '}' at offset 1, found '1'" },
      { "[1] x", "json: expected end of input at offset 4, found 'x'" },
      { "{} {}", "json: expected end of input at offset 3, found '{'" },
      { "\0", "json: expected a value at offset 0, found byte 0x00" },
      { "01", "json: leading zero in number at offset 0" },
      { "-", "json: expected a digit at offset 1, found end of input" },
      { "-a", "json: expected a digit at offset 1, found 'a'" },
      { "1.", "json: expected a digit after '.' at offset 2, found end of input" },
      { "1.e5", "json: expected a digit after '.' at offset 2, found 'e'" },
      { "1e", "json: expected a digit in the exponent at offset 2, found end of input" },
      { "1e+", "json: expected a digit in the exponent at offset 3, found end of input" },
      { ".5", "json: expected a value at offset 0, found '.'" },
      { "+1", "json: expected a value at offset 0, found '+'" },
      { "tru", "json: expected 'true' at offset 0, found 'tru'" },
      { "[nul]", "json: expected 'null' at offset 1, found 'nul'" },
      { "falsy", "json: expected 'false' at offset 0, found 'falsy'" },
      { "NaN", "json: expected a value at offset 0, found 'N'" },
      { '"abc', "json: unterminated string starting at offset 0" },
      { '["ab\\"]', "json: unterminated string starting at offset 1" },
      { '"a\nb"', "json: unescaped control character 0x0a in string at offset 2" },
      { '"a\\x"', "json: invalid escape '\\x' at offset 2" },
      { '"\\u12"', "json: invalid \\u escape (expected 4 hex digits) at offset 1" },
      { '"\\u12G4"', "json: invalid \\u escape (expected 4 hex digits) at offset 1" },
      { "'a'", "json: expected a value at offset 0, found '''" },
      { "\xEF\xBB", "json: expected a value at offset 0, found byte 0xef" },
    }
    for _, c in ipairs(cases) do
      it("rejects " .. string.format("%q", c[1]):gsub("\n", "n"), function()
        fails_with(c[2], json.decode, c[1])
      end)
    end

    it("refuses nesting deeper than 1000 levels, arrays or objects", function()
      fails_with("json: nesting deeper than 1000 levels at offset 1000", json.decode,
        string.rep("[", 1001) .. string.rep("]", 1001))
      fails_with("json: nesting deeper than 1000 levels at offset 5000", json.decode,
        string.rep('{"a":', 1001) .. "1" .. string.rep("}", 1001))
      fails_with("json: nesting deeper than 1000 levels at offset 1000", json.decode,
        string.rep("[", 100000))
    end)

    it("requires a string argument", function()
      local ok, err = pcall(json.decode, 12)
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w.]*decode' %(string expected, got number%)", err)
    end)
  end)

  describe("encode", function()
    it("writes integers exactly, including the int64 extremes", function()
      assert.equals("0", json.encode(0))
      assert.equals("-1", json.encode(-1))
      assert.equals("9223372036854775807", json.encode(math.maxinteger))
      assert.equals("-9223372036854775808", json.encode(math.mininteger))
      assert.equals("9007199254740993", json.encode(9007199254740993))
    end)

    it("writes floats with the fewest digits that read back the same, and as floats", function()
      assert.equals("0.1", json.encode(0.1))
      assert.equals("1.5", json.encode(1.5))
      assert.equals("0.3333333333333333", json.encode(1 / 3))
      assert.equals("123456789.12345679", json.encode(123456789.123456789))
      assert.equals("9007199254740992.0", json.encode(2 ^ 53))
      assert.equals("2.0", json.encode(2.0))
      assert.equals("-0.0", json.encode(-0.0))
      assert.equals("1e+300", json.encode(1e300))
      -- 15 digits already read back as the smallest subnormal, so 15 it is.
      assert.equals("4.94065645841247e-324", json.encode(5e-324))
    end)

    it("round-trips numbers exactly, keeping their Lua type", function()
      for _, x in ipairs { 123456789.123456789, 2 ^ 53, 0.1, 1 / 3, 2.0, -0.0, 1e300, 5e-324, math.pi,
        1.7976931348623157e308, 2.2250738585072014e-308, 0.1 + 0.2, 1, 0, -7,
        math.maxinteger, math.mininteger, 9007199254740993 } do
        local back = json.decode(json.encode(x))
        assert.equals(x, back)
        assert.equals(math.type(x), math.type(back))
        assert.equals(string.format("%a", x), string.format("%a", back))
      end
    end)

    it("refuses NaN and infinities", function()
      fails_with("json: cannot encode NaN (JSON has no NaN)", json.encode, 0 / 0)
      fails_with("json: cannot encode inf (JSON has no infinity)", json.encode, math.huge)
      fails_with("json: cannot encode -inf (JSON has no infinity)", json.encode, -math.huge)
      fails_with("json: cannot encode NaN (JSON has no NaN) at value[2].revenue", json.encode,
        { value = { { revenue = 1.0 }, { revenue = 0 / 0 } } })
    end)

    it("escapes quotes, backslashes and control characters, and keeps UTF-8", function()
      assert.equals([["a\"b\\c/d"]], json.encode('a"b\\c/d'))
      assert.equals([["\b\f\n\r\t"]], json.encode("\b\f\n\r\t"))
      assert.equals([["\u0000\u0001\u001f"]], json.encode("\0\1\31"))
      assert.equals('"\127"', json.encode("\127"))
      assert.equals('"Zürich – 東京 😀"', json.encode("Zürich – 東京 😀"))
      local all = {}
      for i = 0, 127 do all[#all + 1] = string.char(i) end
      all = table.concat(all) .. "é€😀"
      assert.equals(all, json.decode(json.encode(all)))
    end)

    it("refuses strings that are not UTF-8", function()
      fails_with("json: cannot encode a string that is not valid UTF-8 (byte 0xff at index 3)",
        json.encode, "ab\xff")
      fails_with("json: cannot encode a string that is not valid UTF-8 (byte 0xc0 at index 1)",
        json.encode, "\xC0\x80") -- overlong NUL
      fails_with("json: cannot encode a string that is not valid UTF-8 (byte 0xed at index 1)",
        json.encode, "\xED\xA0\x80") -- a UTF-16 surrogate
      fails_with("json: cannot encode a string that is not valid UTF-8 (byte 0xe2 at index 2)",
        json.encode, "x\xE2\x82") -- truncated
      fails_with('json: cannot encode a string that is not valid UTF-8 (byte 0xff at index 1) at ["@odata.etag"]',
        json.encode, { ["@odata.etag"] = "\xff" })
    end)

    it("writes sequences as arrays and string-keyed tables as objects, keys sorted", function()
      assert.equals("[1,2,3]", json.encode { 1, 2, 3 })
      assert.equals('[[1],{"a":true}]', json.encode { { 1 }, { a = true } })
      assert.equals('{"a":1,"b":[],"c":{}}', json.encode { c = {}, b = json.array(), a = 1 })
      assert.equals('{"@odata.etag":"W/\\"1\\"","Z":1,"a":2,"ab":3}',
        json.encode { ab = 3, a = 2, Z = 1, ["@odata.etag"] = 'W/"1"' })
    end)

    it("is deterministic for a table however it was built", function()
      local a, b = {}, {}
      local keys = {}
      for i = 1, 50 do keys[i] = "field" .. i end
      for i = 1, 50 do a[keys[i]] = i end
      for i = 50, 1, -1 do b[keys[i]] = i end
      assert.equals(json.encode(a), json.encode(b))
    end)

    it("writes an empty table as {} unless it is marked as an array", function()
      assert.equals("{}", json.encode {})
      assert.equals("[]", json.encode(json.array()))
      assert.equals("[]", json.encode(json.array {}))
      assert.equals("[]", json.encode(json.empty_array))
      assert.equals('{"ids":[]}', json.encode { ids = json.empty_array })
      assert.equals("[1,2]", json.encode(json.array { 1, 2 }))
    end)

    it("marks tables with json.array and keeps json.empty_array empty", function()
      local t = { 1 }
      assert.equals(t, json.array(t))
      assert.equals(json.array_mt, getmetatable(t))
      assert.equals(t, json.array(t))
      assert.equals(json.empty_array, json.array(json.empty_array))
      assert.equals(0, #json.empty_array)
      local ok, err = pcall(function() json.empty_array[1] = 1 end)
      assert.is_false(ok)
      assert.matches("json.empty_array is read%-only; use json.array%(%) for a new array", err)
      assert.is_nil(json.empty_array[1])
      ok, err = pcall(json.array, setmetatable({}, {}))
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w.]*array' %(table already has a metatable", err)
      ok, err = pcall(json.array, "x")
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w.]*array' %(table expected, got string%)", err)
    end)

    it("names what cannot be encoded, and where", function()
      fails_with("json: cannot encode a sparse array (2 items, highest index 3)", json.encode,
        { 1, nil, 3 })
      fails_with('json: cannot encode a table with both string keys ("name") and integer keys (1): '
        .. "make it an object or an array", json.encode, { 1, name = "x" })
      fails_with('json: cannot encode a table marked as an array that has string key "name"',
        json.encode, json.array { name = "x" })
      fails_with("json: cannot encode a table with float key 1.5", json.encode, { [1.5] = 1 })
      fails_with("json: cannot encode a table with integer key 0 (array indices start at 1)",
        json.encode, { [0] = 1 })
      fails_with("json: cannot encode a table with a boolean key (keys must be strings) at a.b",
        json.encode, { a = { b = { [true] = 1 } } })
      fails_with("json: cannot encode a function at x[1]", json.encode, { x = { print } })
      fails_with("json: cannot encode a thread", json.encode, coroutine.create(print))
      fails_with("json: cannot encode a userdata at f", json.encode, { f = io.stdout })
    end)

    it("refuses reference cycles through the depth limit", function()
      local t = {}
      t.self = t
      local ok, err = pcall(json.encode, t)
      assert.is_false(ok)
      assert.matches("^json: nesting deeper than 1000 levels %(is there a reference cycle%?%) at self%.self", err)
      local deep = {}
      local cur = deep
      for _ = 1, 999 do
        cur[1] = {}
        cur = cur[1]
      end
      assert.equals(string.rep("[", 999) .. "{}" .. string.rep("]", 999), json.encode(deep))
    end)

    it("interoperates with cjson on values both can carry", function()
      local v = { a = { 1, 2, 3 }, b = "x\"y", c = json.null, d = true }
      assert.same(cjson.decode(cjson.encode(v)), json.decode(json.encode(v)))
      assert.same(json.decode(cjson.encode(v)), cjson.decode(json.encode(v)))
    end)
  end)

  it("round-trips a realistic Dataverse page", function()
    local text = [[{"@odata.context":"https://contoso.crm.dynamics.com/api/data/v9.2/$metadata#accounts(name,revenue)/$delta",]]
      .. [["value":[{"@odata.etag":"W/\"7654321\"","accountid":"0f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8",]]
      .. [["name":"Coho Winery – Zürich","accountnumber":"ACC-000042","revenue":1234567.89,]]
      .. [["numberofemployees":250,"creditlimit":null,"createdon":"2024-03-01T08:15:00Z",]]
      .. [["_primarycontactid_value":"11111111-2222-3333-4444-555555555555",]]
      .. [["_primarycontactid_value@OData.Community.Display.V1.FormattedValue":"Jim Glynn",]]
      .. [["versionnumber":9223372036854775807,"exchangerate":1.0,"tags":[],"description":"line1\nline2"},]]
      .. [[{"@odata.context":"https://contoso.crm.dynamics.com/api/data/v9.2/$metadata#accounts/$deletedEntity",]]
      .. [["id":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","reason":"deleted"}],]]
      .. [["@odata.deltaLink":"https://contoso.crm.dynamics.com/api/data/v9.2/accounts?$deltatoken=919042%2108%2f22%2f2017"}]]
    local page = json.decode(text)
    local row = page.value[1]
    assert.equals("integer", math.type(row.numberofemployees))
    assert.equals("float", math.type(row.revenue))
    assert.equals(1234567.89, row.revenue)
    assert.equals(math.maxinteger, row.versionnumber)
    assert.equals("float", math.type(row.exchangerate))
    assert.equals(json.null, row.creditlimit)
    assert.equals('W/"7654321"', row["@odata.etag"])
    assert.equals("line1\nline2", row.description)
    assert.equals("deleted", page.value[2].reason)
    -- Encoding sorts keys; decoding that again and encoding gives the same text.
    local once = json.encode(page)
    local back = json.decode(once)
    assert.same(page, back)
    assert.equals(once, json.encode(back))
    assert.equals("[]", json.encode(back.value[1].tags))
    assert.matches('"versionnumber":9223372036854775807', once, 1, true)
    assert.matches('"exchangerate":1.0,', once, 1, true)
    assert.matches('"revenue":1234567.89,', once, 1, true)
    assert.matches('"creditlimit":null,', once, 1, true)
  end)
end)
