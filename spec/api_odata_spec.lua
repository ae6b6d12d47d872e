-- URL building: OData literals, alternate-key segments, percent-encoding (no HTTP).
local dataverse = require "dataverse"
local odata = dataverse.odata

describe("odata building blocks", function()
  it("quotes string literals by doubling single quotes", function()
    assert.equals("'O''Brien'", odata.literal("O'Brien"))
    assert.equals("''''''", odata.literal("''"))
    assert.equals("''", odata.literal(""))
  end)

  it("writes numbers and booleans unquoted", function()
    assert.equals("42", odata.literal(42))
    assert.equals("-7", odata.literal(-7))
    assert.equals("1.5", odata.literal(1.5))
    assert.equals("true", odata.literal(true))
    assert.equals("false", odata.literal(false))
  end)

  it("rejects values that have no literal form", function()
    assert.has_error(function() odata.literal({}) end)
  end)

  it("builds a single-column alternate key", function()
    assert.equals("sample_bookcode='BookCode0'", odata.key { sample_bookcode = "BookCode0" })
  end)

  it("sorts several key columns so that a key always gives the same URL", function()
    local k = odata.key { zeta = "z", alpha = 2, mid = "O'Brien" }
    assert.equals("alpha=2,mid='O''Brien',zeta='z'", k)
  end)

  it("percent-encodes what a path cannot carry, keeping OData punctuation readable", function()
    assert.equals("code='a%20b%2Fc%3Fd%23e%25f%26g'", odata.key { code = "a b/c?d#e%f&g" })
    assert.equals("code='%C3%A9'", odata.key { code = "é" })
  end)

  it("passes a GUID through, and strips braces from one", function()
    local g = "3b9a6f0e-5a1c-4f8e-9e7d-0c1a2b3c4d01"
    assert.equals(g, odata.key(g))
    assert.equals(g, odata.key("{" .. g .. "}"))
    assert.is_true(odata.is_guid(g))
    assert.is_false(odata.is_guid("3b9a6f0e5a1c4f8e9e7d0c1a2b3c4d01"))
  end)

  it("explains what is wrong with a bad key", function()
    local k, msg = odata.key("BookCode0")
    assert.is_nil(k)
    assert.matches("not a GUID", msg)
    k, msg = odata.key {}
    assert.is_nil(k)
    assert.matches("at least one column", msg)
    k, msg = odata.key { ["bad name"] = 1 }
    assert.is_nil(k)
    assert.matches("not a column name", msg)
    k, msg = odata.key { code = {} }
    assert.is_nil(k)
    assert.matches("string, number or boolean", msg)
    k, msg = odata.key(12)
    assert.is_nil(k)
    assert.matches("got number", msg)
  end)

  it("percent-encodes query option values", function()
    assert.equals("name%20eq%20'a%26b%3Dc%2Bd'", odata.pct("name eq 'a&b=c+d'", "query"))
    assert.equals("a,b", odata.pct("a,b", "query"))
  end)
end)
