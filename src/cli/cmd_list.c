/* seqformer list: every registered part with its options, straight from the registries (the
 * tables the config reader validates against), so this listing cannot drift from the code. */
#include <stdio.h>
#include <string.h>

#include "blocks/block.h"
#include "cli/common.h"
#include "core/error.h"
#include "layers/norm.h"
#include "layers/positions.h"
#include "models/model.h"
#include "tasks/task.h"

static void part(const sf_part_info *p) {
    printf("  %-12s %s\n", p->name, p->doc);
    sf_options_print(stdout, p->opts, p->n_opts, "      ");
}

static void mixers(unsigned slot) {
    for (int i = 0; i < sf_mixer_registry_n; i++)
        if (sf_mixer_registry[i]->slots & slot) part(&sf_mixer_registry[i]->info);
}

int cmd_list(int argc, char **argv) {
    arg_spec specs[] = {{"unused", ARG_IGNORE, NULL, 0, 0, NULL, "", 0}};
    int pr = args_parse("list", argc, argv, specs, 0, "");
    if (pr == 1) return 0;
    if (pr != SF_OK) return cli_fail(2);
    printf("Every part a model config (docs/config.md) can name, with its options.\n\n");
    printf("tasks (\"task\"):\n");
    for (int i = 0; i < sf_task_registry_n; i++) part(&sf_task_registry[i]->info);
    printf("\nmodels (\"model\", with the options at the top level of the config):\n");
    for (int i = 0; i < sf_model_registry_n; i++) {
        part(&sf_model_registry[i]->info);
        if (sf_model_registry[i]->has_blocks)
            printf("      input, positions, blocks, head: the parts below\n");
    }
    printf("\ninputs (\"input\"):\n");
    for (int i = 0; i < sf_input_registry_n; i++) part(&sf_input_registry[i]);
    printf("\npositions (\"positions\"):\n");
    for (int i = 0; i < SF_POSITIONS_N; i++) part(&sf_positions_registry[i]);
    printf("\nheads (\"head\"):\n");
    for (int i = 0; i < sf_head_registry_n; i++) part(&sf_head_registry[i]);
    printf("\nblock kinds (entries of \"blocks\"; each also takes \"norm\" and its mixers):\n");
    sf_options_print(stdout, SF_OPTS(sf_block_options), "      ");
    for (int i = 0; i < sf_block_registry_n; i++) {
        const sf_block_def *b = sf_block_registry[i];
        printf("  %-12s %s\n      mixers: %s%s%s\n", b->info.name, b->info.doc, b->mixer_keys[0],
               b->n_mixers > 1 ? ", " : "", b->n_mixers > 1 ? b->mixer_keys[1] : "");
    }
    printf("\ntoken mixers (\"token_mixer\", or \"mixer\" of a residual block):\n");
    mixers(SF_SLOT_TOKEN);
    printf("\nchannel mixers (\"channel_mixer\", or \"mixer\" of a residual block):\n");
    mixers(SF_SLOT_CHANNEL);
    printf("\nnorms (\"norm\" of a block):\n");
    for (int i = 0; i < 3; i++) part(&sf_norm_registry[i]);
    return 0;
}
