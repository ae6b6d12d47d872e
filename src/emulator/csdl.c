/* GET $metadata: the OData 4.0 CSDL document, generated from the store on every request so
 * that tables created by solutions or over the Web API appear at once.
 *
 * Shaped after Dataverse's own (namespace Microsoft.Dynamics.CRM, alias mscrm, entity types
 * deriving from the abstract crmbaseentity, container "System"): each table is an EntityType
 * keyed on its primary id, with one Property per column the Web API exposes (lookups as
 * _<name>_value Edm.Guid), a single-valued NavigationProperty per lookup whose target table
 * exists (named like the lookup, with its ReferentialConstraint) and its collection-valued
 * partner on the target, and its alternate keys in the OData.Community.Keys.V1.AlternateKeys
 * annotation. The operations are those the router serves (see `operations` below: a new
 * action or function is added there too). */
#include "csdl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "components.h"
#include "emu_internal.h"
#include "entity.h"
#include "store.h"

#define NS "Microsoft.Dynamics.CRM"

/* Functions and actions the emulator serves, as CSDL. */
static const char *const operations =
    "<ComplexType Name=\"WhoAmIResponse\">"
    "<Property Name=\"BusinessUnitId\" Type=\"Edm.Guid\" Nullable=\"false\" />"
    "<Property Name=\"UserId\" Type=\"Edm.Guid\" Nullable=\"false\" />"
    "<Property Name=\"OrganizationId\" Type=\"Edm.Guid\" Nullable=\"false\" />"
    "</ComplexType>"
    "<ComplexType Name=\"ImportSolutionAsyncResponse\">"
    "<Property Name=\"AsyncOperationId\" Type=\"Edm.Guid\" Nullable=\"false\" />"
    "<Property Name=\"ImportJobKey\" Type=\"Edm.String\" Unicode=\"false\" />"
    "</ComplexType>"
    "<EnumType Name=\"EntityKeyIndexStatus\">"
    "<Member Name=\"Pending\" Value=\"0\" /><Member Name=\"InProgress\" Value=\"1\" />"
    "<Member Name=\"Active\" Value=\"2\" /><Member Name=\"Failed\" Value=\"3\" />"
    "</EnumType>"
    "<ComplexType Name=\"ReactivateEntityKeyResponse\">"
    "<Property Name=\"EntityKeyIndexStatus\" Type=\"mscrm.EntityKeyIndexStatus\" "
    "Nullable=\"false\" />"
    "</ComplexType>"
    "<ComplexType Name=\"EntityRecordCountCollection\">"
    "<Property Name=\"Count\" Type=\"Edm.Int32\" Nullable=\"false\" />"
    "<Property Name=\"IsReadOnly\" Type=\"Edm.Boolean\" Nullable=\"false\" />"
    "<Property Name=\"Keys\" Type=\"Collection(Edm.String)\" Unicode=\"false\" />"
    "<Property Name=\"Values\" Type=\"Collection(Edm.Int64)\" />"
    "</ComplexType>"
    "<ComplexType Name=\"RetrieveTotalRecordCountResponse\">"
    "<Property Name=\"EntityRecordCountCollection\" Type=\"mscrm.EntityRecordCountCollection\" />"
    "</ComplexType>"
    "<Function Name=\"RetrieveTotalRecordCount\">"
    "<Parameter Name=\"EntityNames\" Type=\"Collection(Edm.String)\" Nullable=\"false\" "
    "Unicode=\"false\" />"
    "<ReturnType Type=\"mscrm.RetrieveTotalRecordCountResponse\" Nullable=\"false\" />"
    "</Function>"
    "<Function Name=\"WhoAmI\">"
    "<ReturnType Type=\"mscrm.WhoAmIResponse\" Nullable=\"false\" />"
    "</Function>"
    "<Action Name=\"ImportSolution\">"
    "<Parameter Name=\"OverwriteUnmanagedCustomizations\" Type=\"Edm.Boolean\" "
    "Nullable=\"false\" />"
    "<Parameter Name=\"PublishWorkflows\" Type=\"Edm.Boolean\" Nullable=\"false\" />"
    "<Parameter Name=\"CustomizationFile\" Type=\"Edm.Binary\" Nullable=\"false\" />"
    "<Parameter Name=\"ImportJobId\" Type=\"Edm.Guid\" Nullable=\"false\" />"
    "</Action>"
    "<Action Name=\"ImportSolutionAsync\">"
    "<Parameter Name=\"OverwriteUnmanagedCustomizations\" Type=\"Edm.Boolean\" "
    "Nullable=\"false\" />"
    "<Parameter Name=\"PublishWorkflows\" Type=\"Edm.Boolean\" Nullable=\"false\" />"
    "<Parameter Name=\"CustomizationFile\" Type=\"Edm.Binary\" Nullable=\"false\" />"
    "<ReturnType Type=\"mscrm.ImportSolutionAsyncResponse\" Nullable=\"false\" />"
    "</Action>"
    "<Action Name=\"ReactivateEntityKey\">"
    "<Parameter Name=\"EntityLogicalName\" Type=\"Edm.String\" Nullable=\"false\" "
    "Unicode=\"false\" />"
    "<Parameter Name=\"EntityKeyLogicalName\" Type=\"Edm.String\" Nullable=\"false\" "
    "Unicode=\"false\" />"
    "<ReturnType Type=\"mscrm.ReactivateEntityKeyResponse\" Nullable=\"false\" />"
    "</Action>"
    /* the bulk messages, bound to an entity set (bulk.c) */
    "<ComplexType Name=\"CreateMultipleResponse\">"
    "<Property Name=\"Ids\" Type=\"Collection(Edm.Guid)\" Nullable=\"false\" />"
    "</ComplexType>"
    "<Action Name=\"CreateMultiple\" IsBound=\"true\">"
    "<Parameter Name=\"entityset\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\" />"
    "<Parameter Name=\"Targets\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\" />"
    "<ReturnType Type=\"mscrm.CreateMultipleResponse\" Nullable=\"false\" />"
    "</Action>"
    "<Action Name=\"UpdateMultiple\" IsBound=\"true\">"
    "<Parameter Name=\"entityset\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\" />"
    "<Parameter Name=\"Targets\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\" />"
    "</Action>"
    "<Action Name=\"UpsertMultiple\" IsBound=\"true\">"
    "<Parameter Name=\"entityset\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\" />"
    "<Parameter Name=\"Targets\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\" />"
    "</Action>";

static const char *const operation_imports =
    "<FunctionImport Name=\"WhoAmI\" Function=\"" NS ".WhoAmI\" />"
    "<FunctionImport Name=\"RetrieveTotalRecordCount\" Function=\"" NS
    ".RetrieveTotalRecordCount\" />"
    "<ActionImport Name=\"ImportSolution\" Action=\"" NS ".ImportSolution\" />"
    "<ActionImport Name=\"ImportSolutionAsync\" Action=\"" NS ".ImportSolutionAsync\" />"
    "<ActionImport Name=\"ReactivateEntityKey\" Action=\"" NS ".ReactivateEntityKey\" />";

/* The metadata entity set (EntityDefinitions) as far as the emulator serves it. */
static const char *const metadata_types =
    "<EntityType Name=\"EntityKeyMetadata\">"
    "<Key><PropertyRef Name=\"MetadataId\" /></Key>"
    "<Property Name=\"MetadataId\" Type=\"Edm.Guid\" Nullable=\"false\" />"
    "<Property Name=\"LogicalName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"SchemaName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"EntityLogicalName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"KeyAttributes\" Type=\"Collection(Edm.String)\" Unicode=\"false\" />"
    "<Property Name=\"EntityKeyIndexStatus\" Type=\"mscrm.EntityKeyIndexStatus\" "
    "Nullable=\"false\" />"
    "</EntityType>"
    "<EntityType Name=\"AttributeMetadata\">"
    "<Key><PropertyRef Name=\"MetadataId\" /></Key>"
    "<Property Name=\"MetadataId\" Type=\"Edm.Guid\" Nullable=\"false\" />"
    "<Property Name=\"LogicalName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"SchemaName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"EntityLogicalName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"IsPrimaryId\" Type=\"Edm.Boolean\" />"
    "<Property Name=\"IsPrimaryName\" Type=\"Edm.Boolean\" />"
    "</EntityType>"
    "<EntityType Name=\"EntityMetadata\">"
    "<Key><PropertyRef Name=\"MetadataId\" /></Key>"
    "<Property Name=\"MetadataId\" Type=\"Edm.Guid\" Nullable=\"false\" />"
    "<Property Name=\"LogicalName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"SchemaName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"EntitySetName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"LogicalCollectionName\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"PrimaryIdAttribute\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"PrimaryNameAttribute\" Type=\"Edm.String\" Unicode=\"false\" />"
    "<Property Name=\"ChangeTrackingEnabled\" Type=\"Edm.Boolean\" />"
    "<Property Name=\"IsCustomEntity\" Type=\"Edm.Boolean\" />"
    "<Property Name=\"IsManaged\" Type=\"Edm.Boolean\" />"
    "<NavigationProperty Name=\"Attributes\" Type=\"Collection(mscrm.AttributeMetadata)\" />"
    "<NavigationProperty Name=\"Keys\" Type=\"Collection(mscrm.EntityKeyMetadata)\" />"
    "</EntityType>";

/* One lookup, seen from both ends. */
typedef struct {
    const emu_entity *from; /* the table holding the lookup */
    const dv_attribute_def *attr;
    const emu_entity *to; /* its target */
    char single[300];     /* the single-valued navigation property on from */
    char name[300];       /* relationship name: the collection on the target */
} nav;

typedef struct {
    dv_emulator *e;
    nav *navs;
    int n, cap;
} nav_list;

static nav *nav_add(nav_list *l)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        nav *grown = realloc(l->navs, sizeof *grown * (size_t)cap);
        if (!grown) return NULL;
        l->navs = grown;
        l->cap = cap;
    }
    nav *v = &l->navs[l->n++];
    memset(v, 0, sizeof *v);
    return v;
}

/* Relationships that solutions added name the collections; those of a lookup without a
 * single target (a customer lookup) each add a navigation property <lookup>_<table>. */
static void from_solution(void *ud, const char *name, const char *referencing,
                          const char *attribute, const char *referenced)
{
    nav_list *l = ud;
    int n = l->n;
    for (int i = 0; i < n; i++) {
        nav *v = &l->navs[i];
        if (v->attr->target && !strcmp(v->from->def.logical_name, referencing) &&
            !strcmp(v->attr->logical_name, attribute))
            snprintf(v->name, sizeof v->name, "%s", name);
    }
    const emu_entity *from = store_by_logical(l->e, referencing, strlen(referencing));
    const emu_entity *to = store_by_logical(l->e, referenced, strlen(referenced));
    const dv_attribute_def *a = from ? store_attr(from, attribute) : NULL;
    if (!a || a->target || !to || a->type != DV_ATTR_LOOKUP) return;
    nav *v = nav_add(l);
    if (!v) return;
    v->from = from;
    v->attr = a;
    v->to = to;
    snprintf(v->single, sizeof v->single, "%s_%s", attribute, referenced);
    snprintf(v->name, sizeof v->name, "%s", name);
}

static nav *collect_navs(dv_emulator *e, int *n)
{
    nav_list l = {e, NULL, 0, 0};
    for (int i = 0; i < e->n_ents; i++) {
        const emu_entity *t = &e->ents[i];
        for (int j = 0; j < t->def.n_attributes; j++) {
            const dv_attribute_def *a = &t->def.attributes[j];
            if ((a->type != DV_ATTR_LOOKUP && a->type != DV_ATTR_OWNER) || !a->target) continue;
            const emu_entity *to = store_by_logical(e, a->target, strlen(a->target));
            if (!to) continue;
            nav *v = nav_add(&l);
            if (!v) break;
            v->from = t;
            v->attr = a;
            v->to = to;
            snprintf(v->single, sizeof v->single, "%s", a->logical_name);
            snprintf(v->name, sizeof v->name, "%s_%s_%s", a->target, t->def.logical_name,
                     a->logical_name);
        }
    }
    comp_relationships(e, from_solution, &l);
    /* A built-in customer lookup (contact.parentcustomerid) points to accounts and contacts;
     * Dataverse names its relationships <table>_customer_<target>s. */
    static const char *const customer_targets[] = {"account", "contact"};
    for (int i = 0; i < e->n_ents; i++) {
        const emu_entity *t = &e->ents[i];
        if (t->solution_id[0]) continue;
        for (int j = 0; j < t->def.n_attributes; j++) {
            const dv_attribute_def *a = &t->def.attributes[j];
            if (a->type != DV_ATTR_LOOKUP || a->target) continue;
            for (size_t k = 0; k < 2; k++) {
                const char *target = customer_targets[k];
                const emu_entity *to = store_by_logical(e, target, strlen(target));
                nav *v = to ? nav_add(&l) : NULL;
                if (!v) continue;
                v->from = t;
                v->attr = a;
                v->to = to;
                snprintf(v->single, sizeof v->single, "%s_%s", a->logical_name, target);
                snprintf(v->name, sizeof v->name, "%s_customer_%ss", t->def.logical_name, target);
            }
        }
    }
    *n = l.n;
    return l.navs;
}

static void alternate_keys(sbuf *b, const emu_entity *t)
{
    if (t->def.n_keys == 0) return;
    sb_puts(b, "<Annotation Term=\"OData.Community.Keys.V1.AlternateKeys\"><Collection>");
    for (int i = 0; i < t->def.n_keys; i++) {
        const dv_key_def *k = &t->def.keys[i];
        sb_puts(b, "<Record Type=\"OData.Community.Keys.V1.AlternateKey\">"
                   "<PropertyValue Property=\"Key\"><Collection>");
        for (int j = 0; j < k->n_attributes; j++) {
            char prop[160];
            store_key_prop(t, k, j, prop, sizeof prop);
            sb_puts(b, "<Record Type=\"OData.Community.Keys.V1.PropertyRef\">"
                       "<PropertyValue Property=\"Alias\" String=\"");
            sb_xml_str(b, k->attributes[j]);
            sb_puts(b, "\" /><PropertyValue Property=\"Name\" PropertyPath=\"");
            sb_xml_str(b, prop);
            sb_puts(b, "\" /></Record>");
        }
        sb_puts(b, "</Collection></PropertyValue></Record>");
    }
    sb_puts(b, "</Collection></Annotation>");
}

static void entity_type(sbuf *b, const emu_entity *t, const nav *navs, int n_navs)
{
    const dv_entity_def *d = &t->def;
    sb_puts(b, "<EntityType Name=\"");
    sb_xml_str(b, d->logical_name);
    sb_puts(b, "\" BaseType=\"mscrm.crmbaseentity\"><Key><PropertyRef Name=\"");
    sb_xml_str(b, d->primary_id);
    sb_puts(b, "\" /></Key>");
    for (int i = 0; i < d->n_attributes; i++) {
        const dv_attribute_def *a = &d->attributes[i];
        const char *type = dv_attr_is_property(a->type) ? dv_attr_edm_type(a->type) : NULL;
        if (!type) continue;
        char prop[160];
        emu_prop_name(a, prop, sizeof prop);
        sb_puts(b, "<Property Name=\"");
        sb_xml_str(b, prop);
        sb_printf(b, "\" Type=\"%s\"", type);
        if (!strcmp(a->logical_name, d->primary_id)) sb_puts(b, " Nullable=\"false\"");
        if (!strcmp(type, "Edm.String")) sb_puts(b, " Unicode=\"false\"");
        if (!strcmp(type, "Edm.Decimal")) sb_puts(b, " Scale=\"Variable\"");
        if (!strcmp(type, "Edm.DateTimeOffset")) sb_puts(b, " Precision=\"0\"");
        sb_puts(b, " />");
    }
    for (int i = 0; i < n_navs; i++) {
        const nav *v = &navs[i];
        if (v->from == t) {
            char prop[160];
            emu_prop_name(v->attr, prop, sizeof prop);
            sb_puts(b, "<NavigationProperty Name=\"");
            sb_xml_str(b, v->single);
            sb_puts(b, "\" Type=\"mscrm.");
            sb_xml_str(b, v->to->def.logical_name);
            sb_puts(b, "\" Partner=\"");
            sb_xml_str(b, v->name);
            sb_puts(b, "\"><ReferentialConstraint Property=\"");
            sb_xml_str(b, prop);
            sb_puts(b, "\" ReferencedProperty=\"");
            sb_xml_str(b, v->to->def.primary_id);
            sb_puts(b, "\" /></NavigationProperty>");
        }
        if (v->to == t) {
            sb_puts(b, "<NavigationProperty Name=\"");
            sb_xml_str(b, v->name);
            sb_puts(b, "\" Type=\"Collection(mscrm.");
            sb_xml_str(b, v->from->def.logical_name);
            sb_puts(b, ")\" Partner=\"");
            sb_xml_str(b, v->single);
            sb_puts(b, "\" />");
        }
    }
    alternate_keys(b, t);
    sb_puts(b, "</EntityType>");
}

static void entity_set(sbuf *b, const emu_entity *t, const nav *navs, int n_navs)
{
    sb_puts(b, "<EntitySet Name=\"");
    sb_xml_str(b, t->def.entity_set_name);
    sb_puts(b, "\" EntityType=\"" NS ".");
    sb_xml_str(b, t->def.logical_name);
    sb_puts(b, "\">");
    for (int i = 0; i < n_navs; i++) {
        const nav *v = &navs[i];
        if (v->from == t) {
            sb_puts(b, "<NavigationPropertyBinding Path=\"");
            sb_xml_str(b, v->single);
            sb_puts(b, "\" Target=\"");
            sb_xml_str(b, v->to->def.entity_set_name);
            sb_puts(b, "\" />");
        }
        if (v->to == t) {
            sb_puts(b, "<NavigationPropertyBinding Path=\"");
            sb_xml_str(b, v->name);
            sb_puts(b, "\" Target=\"");
            sb_xml_str(b, v->from->def.entity_set_name);
            sb_puts(b, "\" />");
        }
    }
    sb_puts(b, "</EntitySet>");
}

int h_csdl(emu_req *r)
{
    dv_emulator *e = r->emu;
    if (strcmp(r->method, "GET") != 0)
        return emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on $metadata.",
                         r->method);
    int n_navs = 0;
    nav *navs = collect_navs(e, &n_navs);
    sbuf *b = &r->out;
    b->n = 0;
    sb_puts(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
               "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">"
               "<edmx:Reference Uri=\"http://vocabularies.odata.org/OData.Community.Keys.V1.xml\">"
               "<edmx:Include Namespace=\"OData.Community.Keys.V1\" Alias=\"Keys\" />"
               "</edmx:Reference>"
               "<edmx:DataServices>"
               "<Schema Namespace=\"" NS "\" Alias=\"mscrm\" "
               "xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">"
               "<EntityType Name=\"crmbaseentity\" Abstract=\"true\" />");
    for (int i = 0; i < e->n_ents; i++)
        entity_type(b, &e->ents[i], navs, n_navs);
    sb_puts(b, metadata_types);
    sb_puts(b, operations);
    sb_puts(b, "<EntityContainer Name=\"System\">");
    for (int i = 0; i < e->n_ents; i++)
        entity_set(b, &e->ents[i], navs, n_navs);
    sb_puts(b, "<EntitySet Name=\"EntityDefinitions\" EntityType=\"" NS ".EntityMetadata\" />");
    sb_puts(b, operation_imports);
    sb_puts(b, "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    free(navs);
    r->status = 200;
    r->content_type = "application/xml";
    return 0;
}
