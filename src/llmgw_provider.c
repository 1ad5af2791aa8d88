/* The static registry of translators, indexed by backend type. */
#include "llmgw_provider.h"

const llmgw_provider_t *llmgw_provider_get(llmgw_backend_type_e type)
{
    /* A type without a translator answers NULL: the handler turns that into
     * a clear 501 instead of pretending to serve it. */
    switch (type) {
    case LLMGW_BACKEND_OPENAI:
        return &llmgw_provider_openai;
    case LLMGW_BACKEND_AZURE_OPENAI:
        return &llmgw_provider_azure_openai;
    case LLMGW_BACKEND_META:
        return &llmgw_provider_meta;
    case LLMGW_BACKEND_MISTRAL:
        return &llmgw_provider_mistral;
    case LLMGW_BACKEND_ANTHROPIC:
        return &llmgw_provider_anthropic;
    case LLMGW_BACKEND_GOOGLE:
        return &llmgw_provider_google;
    default:
        return NULL;
    }
}

void llmgw_provider_prepare(llmgw_config_t *cfg, apr_pool_t *p)
{
    int i;

    for (i = 0; i < cfg->backends->nelts; i++) {
        llmgw_backend_t *b = APR_ARRAY_IDX(cfg->backends, i, llmgw_backend_t *);
        const llmgw_provider_t *prov = llmgw_provider_get(b->type);

        if (prov && prov->prepare)
            b->fixed = prov->prepare(b, p);
    }
}
