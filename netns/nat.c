/* Egress NAT through libnftables, in a table of our own (`ip <nft_table>`)
 * so that no other table is ever read or changed.  Each script runs as one
 * nftables transaction: concurrent or repeated applies converge to exactly
 * one rule, and a half-applied state is never visible. */
#include "netns/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <nftables/libnftables.h>

static int nft_run(struct net *net, const char *script, const char *what, struct berth_err *err)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return berth_errf(err, ENOMEM, "nftables table ip %s: %s: out of memory",
				  net->nft_table, what);
	/* Buffered so that library code never writes to stdout/stderr. */
	int r = 0;
	if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)
		r = berth_errf(err, ENOMEM, "nftables table ip %s: %s: out of memory",
			       net->nft_table, what);
	else if (nft_run_cmd_from_buffer(ctx, script) != 0) {
		const char *msg = nft_ctx_get_error_buffer(ctx);
		size_t len = msg ? strcspn(msg, "\n") : 0;
		r = berth_errf(err, EIO, "nftables table ip %s: %s: %.*s", net->nft_table, what,
			       (int)len, msg ? msg : "");
	}
	nft_ctx_free(ctx);
	return r;
}

int net_nat_apply(struct net *net, struct berth_err *err)
{
	char cidr[NET_CIDR_STRLEN], script[1024];
	net_cidr_str(net, cidr);
	const char *t = net->nft_table;
	/* Priority 100 is srcnat.  Traffic between tasks and to the host stays
	 * inside the subnet and is never masqueraded. */
	snprintf(script, sizeof(script),
		 "add table ip %s\n"
		 "add chain ip %s postrouting { type nat hook postrouting priority 100; policy accept; }\n"
		 "flush chain ip %s postrouting\n"
		 "add rule ip %s postrouting ip saddr %s ip daddr != %s masquerade comment \"berth %s\"\n",
		 t, t, t, t, cidr, cidr, net->bridge);
	return nft_run(net, script, "masquerade", err);
}

int net_nat_remove(struct net *net, struct berth_err *err)
{
	char script[256];
	/* "add" first makes the delete succeed when the table is missing;
	 * both happen in one transaction. */
	snprintf(script, sizeof(script), "add table ip %s\ndelete table ip %s\n", net->nft_table,
		 net->nft_table);
	return nft_run(net, script, "delete", err);
}
