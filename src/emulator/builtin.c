#include "builtin.h"

/* Column lists: one column per line, read by a person as a table. */
#define COL(name, type, len, target)                                                               \
    {                                                                                              \
        name, NULL, type, len, 0, target                                                           \
    }
#define N(a) (int)(sizeof(a) / sizeof(a[0]))

/* clang-format off */
static dv_attribute_def account_attrs[] = {
    COL("accountid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    {"name", "Account Name", DV_ATTR_STRING, 160, 1, NULL},
    COL("accountnumber", DV_ATTR_STRING, 20, NULL),
    COL("telephone1", DV_ATTR_STRING, 50, NULL),
    COL("emailaddress1", DV_ATTR_STRING, 100, NULL),
    COL("websiteurl", DV_ATTR_STRING, 200, NULL),
    COL("numberofemployees", DV_ATTR_INTEGER, 0, NULL),
    COL("revenue", DV_ATTR_MONEY, 0, NULL),
    COL("description", DV_ATTR_MEMO, 2000, NULL),
    COL("address1_city", DV_ATTR_STRING, 80, NULL),
    COL("address1_country", DV_ATTR_STRING, 80, NULL),
    COL("primarycontactid", DV_ATTR_LOOKUP, 0, "contact"),
    COL("parentaccountid", DV_ATTR_LOOKUP, 0, "account"),
    COL("industrycode", DV_ATTR_PICKLIST, 0, NULL),
    COL("donotemail", DV_ATTR_BOOLEAN, 0, NULL),
    COL("fax", DV_ATTR_STRING, 50, NULL),
    COL("address1_line1", DV_ATTR_STRING, 250, NULL),
    COL("address1_postalcode", DV_ATTR_STRING, 20, NULL),
    COL("address1_stateorprovince", DV_ATTR_STRING, 50, NULL),
    COL("address1_latitude", DV_ATTR_DOUBLE, 0, NULL),
    COL("address1_longitude", DV_ATTR_DOUBLE, 0, NULL),
    COL("creditonhold", DV_ATTR_BOOLEAN, 0, NULL),
    COL("creditlimit", DV_ATTR_MONEY, 0, NULL),
    COL("accountcategorycode", DV_ATTR_PICKLIST, 0, NULL),
    COL("tickersymbol", DV_ATTR_STRING, 10, NULL),
};

static dv_attribute_def contact_attrs[] = {
    COL("contactid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    COL("fullname", DV_ATTR_STRING, 160, NULL),
    COL("firstname", DV_ATTR_STRING, 50, NULL),
    COL("lastname", DV_ATTR_STRING, 50, NULL),
    COL("emailaddress1", DV_ATTR_STRING, 100, NULL),
    COL("telephone1", DV_ATTR_STRING, 50, NULL),
    COL("mobilephone", DV_ATTR_STRING, 50, NULL),
    COL("jobtitle", DV_ATTR_STRING, 100, NULL),
    COL("birthdate", DV_ATTR_DATETIME, 0, NULL),
    COL("address1_line1", DV_ATTR_STRING, 250, NULL),
    COL("address1_city", DV_ATTR_STRING, 80, NULL),
    COL("address1_postalcode", DV_ATTR_STRING, 20, NULL),
    /* a customer lookup: an account or a contact (bound as parentcustomerid_account…) */
    COL("parentcustomerid", DV_ATTR_LOOKUP, 0, NULL),
    COL("annualincome", DV_ATTR_MONEY, 0, NULL),
    COL("numberofchildren", DV_ATTR_INTEGER, 0, NULL),
    COL("description", DV_ATTR_MEMO, 2000, NULL),
};

static dv_attribute_def systemuser_attrs[] = {
    COL("systemuserid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    COL("fullname", DV_ATTR_STRING, 200, NULL),
    COL("domainname", DV_ATTR_STRING, 1024, NULL),
    COL("internalemailaddress", DV_ATTR_STRING, 100, NULL),
    COL("businessunitid", DV_ATTR_LOOKUP, 0, "businessunit"),
};

static dv_attribute_def businessunit_attrs[] = {
    COL("businessunitid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    COL("name", DV_ATTR_STRING, 160, NULL),
};

static dv_attribute_def organization_attrs[] = {
    COL("organizationid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    COL("name", DV_ATTR_STRING, 160, NULL),
    COL("expirechangetrackingindays", DV_ATTR_INTEGER, 0, NULL),
};

static dv_attribute_def solution_attrs[] = {
    COL("solutionid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    COL("uniquename", DV_ATTR_STRING, 65, NULL),
    COL("friendlyname", DV_ATTR_STRING, 256, NULL),
    COL("version", DV_ATTR_STRING, 256, NULL),
    COL("ismanaged", DV_ATTR_BOOLEAN, 0, NULL),
    COL("installedon", DV_ATTR_DATETIME, 0, NULL),
    COL("description", DV_ATTR_MEMO, 2000, NULL),
};

/* What ImportSolutionAsync reports its job in. */
static dv_attribute_def asyncoperation_attrs[] = {
    COL("asyncoperationid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    COL("name", DV_ATTR_STRING, 256, NULL),
    COL("operationtype", DV_ATTR_PICKLIST, 0, NULL),
    COL("message", DV_ATTR_MEMO, 2000, NULL),
    COL("friendlymessage", DV_ATTR_MEMO, 2000, NULL),
    COL("completedon", DV_ATTR_DATETIME, 0, NULL),
};

/* What ImportSolution records about each import (importjobs(<ImportJobId>)). */
static dv_attribute_def importjob_attrs[] = {
    COL("importjobid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    COL("name", DV_ATTR_STRING, 100, NULL),
    COL("solutionname", DV_ATTR_STRING, 256, NULL),
    COL("solutionid", DV_ATTR_UNIQUEIDENTIFIER, 0, NULL),
    COL("progress", DV_ATTR_DOUBLE, 0, NULL),
    COL("startedon", DV_ATTR_DATETIME, 0, NULL),
    COL("completedon", DV_ATTR_DATETIME, 0, NULL),
    COL("data", DV_ATTR_MEMO, 0, NULL),
};
/* clang-format on */

static dv_entity_def builtins[] = {
    {"account", "accounts", "Account", "accountid", "name", 1, account_attrs, N(account_attrs),
     NULL, 0, 1},
    {"contact", "contacts", "Contact", "contactid", "fullname", 1, contact_attrs, N(contact_attrs),
     NULL, 0, 1},
    {"systemuser", "systemusers", "User", "systemuserid", "fullname", 1, systemuser_attrs,
     N(systemuser_attrs), NULL, 0, 1},
    {"businessunit", "businessunits", "Business Unit", "businessunitid", "name", 1,
     businessunit_attrs, N(businessunit_attrs), NULL, 0, 1},
    {"organization", "organizations", "Organization", "organizationid", "name", 0,
     organization_attrs, N(organization_attrs), NULL, 0, 1},
    {"solution", "solutions", "Solution", "solutionid", "friendlyname", 0, solution_attrs,
     N(solution_attrs), NULL, 0, 1},
    {"asyncoperation", "asyncoperations", "System Job", "asyncoperationid", "name", 0,
     asyncoperation_attrs, N(asyncoperation_attrs), NULL, 0, 1},
    {"importjob", "importjobs", "Import Job", "importjobid", "name", 0, importjob_attrs,
     N(importjob_attrs), NULL, 0, 1},
};

const dv_entity_def *builtin_entities(int *n)
{
    *n = N(builtins);
    return builtins;
}
