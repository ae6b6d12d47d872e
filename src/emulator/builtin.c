#include "builtin.h"

#define S(n)                                                                                       \
    {                                                                                              \
        n, NULL, DV_ATTR_STRING, 100, 0, NULL                                                      \
    }
#define M(n)                                                                                       \
    {                                                                                              \
        n, NULL, DV_ATTR_MEMO, 2000, 0, NULL                                                       \
    }
#define I(n)                                                                                       \
    {                                                                                              \
        n, NULL, DV_ATTR_INTEGER, 0, 0, NULL                                                       \
    }
#define Y(n)                                                                                       \
    {                                                                                              \
        n, NULL, DV_ATTR_MONEY, 0, 0, NULL                                                         \
    }
#define B(n)                                                                                       \
    {                                                                                              \
        n, NULL, DV_ATTR_BOOLEAN, 0, 0, NULL                                                       \
    }
#define D(n)                                                                                       \
    {                                                                                              \
        n, NULL, DV_ATTR_DATETIME, 0, 0, NULL                                                      \
    }
#define P(n)                                                                                       \
    {                                                                                              \
        n, NULL, DV_ATTR_PICKLIST, 0, 0, NULL                                                      \
    }
#define L(n, t)                                                                                    \
    {                                                                                              \
        n, NULL, DV_ATTR_LOOKUP, 0, 0, t                                                           \
    }
#define ID(n)                                                                                      \
    {                                                                                              \
        n, NULL, DV_ATTR_UNIQUEIDENTIFIER, 0, 0, NULL                                              \
    }
#define N(a) (int)(sizeof(a) / sizeof(a[0]))

static dv_attribute_def account_attrs[] = {
    ID("accountid"),
    {"name", "Account Name", DV_ATTR_STRING, 160, 1, NULL},
    S("accountnumber"),
    S("telephone1"),
    S("emailaddress1"),
    S("websiteurl"),
    I("numberofemployees"),
    Y("revenue"),
    M("description"),
    S("address1_city"),
    S("address1_country"),
    L("primarycontactid", "contact"),
    L("parentaccountid", "account"),
    P("industrycode"),
    B("donotemail"),
};

static dv_attribute_def contact_attrs[] = {
    ID("contactid"),    S("fullname"),
    S("firstname"),     S("lastname"),
    S("emailaddress1"), S("telephone1"),
    S("jobtitle"),      D("birthdate"),
    S("address1_city"), L("parentcustomerid", "account"),
    M("description"),
};

static dv_attribute_def systemuser_attrs[] = {
    ID("systemuserid"),
    S("fullname"),
    S("domainname"),
    S("internalemailaddress"),
    L("businessunitid", "businessunit"),
};

static dv_attribute_def businessunit_attrs[] = {ID("businessunitid"), S("name")};

static dv_attribute_def organization_attrs[] = {
    ID("organizationid"),
    S("name"),
    I("expirechangetrackingindays"),
};

static dv_attribute_def solution_attrs[] = {
    ID("solutionid"), S("uniquename"),  S("friendlyname"), S("version"),
    B("ismanaged"),   D("installedon"), M("description"),
};

/* What ImportSolutionAsync reports its job in. */
static dv_attribute_def asyncoperation_attrs[] = {
    ID("asyncoperationid"), S("name"),        I("operationtype"), M("message"),
    M("friendlymessage"),   D("completedon"),
};

static dv_entity_def builtins[] = {
    {"account", "accounts", "Account", "accountid", "name", 1, account_attrs, N(account_attrs),
     NULL, 0},
    {"contact", "contacts", "Contact", "contactid", "fullname", 1, contact_attrs, N(contact_attrs),
     NULL, 0},
    {"systemuser", "systemusers", "User", "systemuserid", "fullname", 1, systemuser_attrs,
     N(systemuser_attrs), NULL, 0},
    {"businessunit", "businessunits", "Business Unit", "businessunitid", "name", 1,
     businessunit_attrs, N(businessunit_attrs), NULL, 0},
    {"organization", "organizations", "Organization", "organizationid", "name", 0,
     organization_attrs, N(organization_attrs), NULL, 0},
    {"solution", "solutions", "Solution", "solutionid", "friendlyname", 0, solution_attrs,
     N(solution_attrs), NULL, 0},
    {"asyncoperation", "asyncoperations", "System Job", "asyncoperationid", "name", 0,
     asyncoperation_attrs, N(asyncoperation_attrs), NULL, 0},
};

const dv_entity_def *builtin_entities(int *n)
{
    *n = N(builtins);
    return builtins;
}
