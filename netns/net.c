/* struct net: configuration checks, directories and the host netlink socket. */
#include "netns/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "common/fsutil.h"
#include "common/hash.h"

void net_config_init(struct net_config *cfg)
{
	*cfg = (struct net_config){
		.bridge = "berth0",
		.subnet = "10.89.0.0/16",
		.nft_table = "berth",
		.run_dir = "/run/berth",
		.ipam_dir = "/var/lib/berth/ipam",
		.host_resolv_conf = "/etc/resolv.conf",
		.fallback_resolv_conf = "/run/systemd/resolve/resolv.conf",
		.nat = true,
		.blocked = "169.254.169.254",
	};
}

void net_cidr_str(const struct net *net, char out[NET_CIDR_STRLEN])
{
	struct in_addr a = { .s_addr = htonl(net->network) };
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	snprintf(out, NET_CIDR_STRLEN, "%s/%u", ip, net->prefix);
}

uint32_t net_port_group(const char *bridge)
{
	/* Any value but 0, the group every other interface is in. */
	uint64_t h = berth_fnv1a64(BERTH_FNV1A64_INIT, bridge, strlen(bridge));
	return (uint32_t)(h >> 33) | 0x40000000u;
}

uint32_t net_dying_group(const char *bridge)
{
	return net_port_group(bridge) | 0x80000000u;
}

int net_sysctl_on(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int r = write(fd, "1\n", 2) == 2 ? 0 : -errno;
	close(fd);
	return r;
}

void net_mac_from_ip(uint32_t ip, uint8_t mac[6])
{
	mac[0] = 0x02; /* locally administered, unicast */
	mac[1] = 0xbe;
	mac[2] = (uint8_t)(ip >> 24);
	mac[3] = (uint8_t)(ip >> 16);
	mac[4] = (uint8_t)(ip >> 8);
	mac[5] = (uint8_t)ip;
}

/* libnl folds kernel errnos into its own codes; map back the ones callers
 * act on so "exists" and "not found" stay recognisable. */
static const struct { int nle, err; } nle_errno[] = {
	{ NLE_EXIST, EEXIST },       { NLE_OBJ_NOTFOUND, ENOENT }, { NLE_NODEV, ENODEV },
	{ NLE_NOMEM, ENOMEM },       { NLE_PERM, EPERM },          { NLE_NOACCESS, EACCES },
	{ NLE_BUSY, EBUSY },         { NLE_INVAL, EINVAL },        { NLE_RANGE, ERANGE },
	{ NLE_AGAIN, EAGAIN },       { NLE_INTR, EINTR },          { NLE_OPNOTSUPP, EOPNOTSUPP },
	{ NLE_NOADDR, EADDRNOTAVAIL }, { NLE_MSGSIZE, EMSGSIZE },
};

int net_nl_err(struct berth_err *err, int nlerr, const char *fmt, ...)
{
	int code = EIO;
	for (size_t i = 0; i < ARRAY_SIZE(nle_errno); i++)
		if (nle_errno[i].nle == abs(nlerr))
			code = nle_errno[i].err;
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return berth_errf(err, code, "%s: %s", what, nl_geterror(nlerr));
}

static int parse_subnet(struct net *net, const char *cidr, struct berth_err *err)
{
	char ip[INET_ADDRSTRLEN];
	const char *slash = strchr(cidr, '/');
	if (!slash || (size_t)(slash - cidr) >= sizeof(ip))
		return berth_errf(err, EINVAL, "subnet %s: expected a.b.c.d/prefix", cidr);
	memcpy(ip, cidr, (size_t)(slash - cidr));
	ip[slash - cidr] = '\0';
	struct in_addr a;
	char *end;
	errno = 0;
	unsigned long prefix = strtoul(slash + 1, &end, 10);
	if (inet_pton(AF_INET, ip, &a) != 1 || *end || end == slash + 1 || errno)
		return berth_errf(err, EINVAL, "subnet %s: expected a.b.c.d/prefix", cidr);
	/* Network, gateway and broadcast take three addresses: /30 leaves one. */
	if (prefix < 8 || prefix > 30)
		return berth_errf(err, EINVAL, "subnet %s: prefix must be 8..30", cidr);
	uint32_t mask = ~0u << (32 - prefix);
	net->network = ntohl(a.s_addr);
	if (net->network & ~mask)
		return berth_errf(err, EINVAL, "subnet %s: host bits are set", cidr);
	net->prefix = (unsigned)prefix;
	net->gateway = net->network + 1;
	return 0;
}

/* cfg.task_endpoint "a.b.c.d:port": an address the bridge may hold
 * without IPAM ever handing it to a task (outside the subnet, or the
 * gateway's own) and a port 1..65535. */
static int parse_endpoint(struct net *net, const char *s, struct berth_err *err)
{
	char ip[INET_ADDRSTRLEN];
	const char *colon = s ? strrchr(s, ':') : NULL;
	if (!s)
		return 0;
	struct in_addr a;
	char *end;
	errno = 0;
	unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
	if (!colon || (size_t)(colon - s) >= sizeof(ip) || end == colon + 1 || *end || errno ||
	    port < 1 || port > 65535)
		return berth_errf(err, EINVAL, "task endpoint %s: expected a.b.c.d:port", s);
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1)
		return berth_errf(err, EINVAL, "task endpoint %s: expected a.b.c.d:port", s);
	uint32_t addr = ntohl(a.s_addr), mask = ~0u << (32 - net->prefix);
	if ((addr & mask) == net->network && addr != net->gateway)
		return berth_errf(err, EINVAL, "task endpoint %s: an address of the task subnet must "
				  "be its gateway (any other could be a task's)", s);
	if (addr == 0 || (addr >> 24) == 127)
		return berth_errf(err, EINVAL, "task endpoint %s: not an address tasks can reach", s);
	net->endpoint = addr;
	net->endpoint_port = (uint16_t)port;
	return 0;
}

/* Item of len chars is "a.b.c.d" or "a.b.c.d/n" without host bits. */
static bool blocked_item_ok(const char *item, size_t len)
{
	char ip[INET_ADDRSTRLEN];
	size_t iplen = strcspn(item, "/");
	if (iplen > len)
		iplen = len;
	if (iplen == 0 || iplen >= sizeof(ip))
		return false;
	memcpy(ip, item, iplen);
	ip[iplen] = '\0';
	struct in_addr a;
	if (inet_pton(AF_INET, ip, &a) != 1)
		return false;
	if (iplen == len)
		return true;
	unsigned prefix = 0;
	size_t digits = len - iplen - 1;
	if (digits < 1 || digits > 2 || strspn(item + iplen + 1, "0123456789") < digits)
		return false;
	for (size_t i = 0; i < digits; i++)
		prefix = prefix * 10 + (unsigned)(item[iplen + 1 + i] - '0');
	uint32_t host_bits = prefix == 0 ? ~0u : prefix >= 32 ? 0 : ~(~0u << (32 - prefix));
	return prefix <= 32 && !(ntohl(a.s_addr) & host_bits);
}

/* cfg.blocked, checked item by item (it is spliced into an nft script),
 * into net->blocked as "x, y". */
static int parse_blocked(struct net *net, const char *list, struct berth_err *err)
{
	size_t used = 0;
	for (const char *p = list; *p;) {
		p += strspn(p, " ,");
		size_t len = strcspn(p, " ,");
		if (len == 0)
			break;
		if (!blocked_item_ok(p, len))
			return berth_errf(err, EINVAL, "blocked address \"%.*s\": expected a.b.c.d or "
					  "a.b.c.d/prefix", (int)len, p);
		int n = snprintf(net->blocked + used, sizeof(net->blocked) - used, "%s%.*s",
				 used ? ", " : "", (int)len, p);
		if (n < 0 || (size_t)n >= sizeof(net->blocked) - used)
			return berth_errf(err, E2BIG, "blocked addresses: more than %zu characters",
					  sizeof(net->blocked) - 1);
		used += (size_t)n;
		p += len;
	}
	return 0;
}

static bool name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (const char *p = s; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && !strchr(extra, *p))
			return false;
	return true;
}

bool net_id_ok(const char *id)
{
	return id[0] != '.' && name_ok(id, NET_TASK_ID_MAX, "_.-");
}

static int check_config(const struct net_config *cfg, struct berth_err *err)
{
	/* The table name is spliced into an nft script: keep it an identifier. */
	if (!cfg->nft_table || !name_ok(cfg->nft_table, 63, "_"))
		return berth_errf(err, EINVAL, "nftables table name \"%s\" is not [A-Za-z0-9_]{1,63}",
				  cfg->nft_table ? cfg->nft_table : "");
	if (!cfg->bridge || !name_ok(cfg->bridge, IFNAMSIZ - 1, "_.-"))
		return berth_errf(err, EINVAL, "bridge name \"%s\" is not [A-Za-z0-9_.-]{1,15}",
				  cfg->bridge ? cfg->bridge : "");
	if (!cfg->subnet || !cfg->run_dir || !cfg->ipam_dir || !cfg->host_resolv_conf ||
	    !cfg->fallback_resolv_conf)
		return berth_errf(err, EINVAL, "network config: a path or the subnet is missing");
	return 0;
}

static int open_dirs(struct net *net, const struct net_config *cfg, struct berth_err *err)
{
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = { .s_addr = htonl(net->network) };
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	if (!(net->run_dir = strdup(cfg->run_dir)))
		return berth_errf(err, ENOMEM, "network config: out of memory");
	if (asprintf(&net->netns_dir, "%s/netns", cfg->run_dir) < 0) {
		net->netns_dir = NULL;
		return berth_errf(err, ENOMEM, "network config: out of memory");
	}
	if (asprintf(&net->ipam_path, "%s/%s-%u", cfg->ipam_dir, ip, net->prefix) < 0) {
		net->ipam_path = NULL;
		return berth_errf(err, ENOMEM, "network config: out of memory");
	}
	int r = berth_open_dir_p(net->netns_dir, 0700, &net->netns_dirfd, err);
	if (r == 0)
		r = berth_open_dir_p(net->ipam_path, 0700, &net->ipam_dirfd, err);
	return r;
}

static int open_netlink(struct net *net, struct berth_err *err)
{
	net->nl = nl_socket_alloc();
	if (!net->nl)
		return berth_errf(err, ENOMEM, "netlink socket: out of memory");
	int r = nl_connect(net->nl, NETLINK_ROUTE);
	if (r < 0)
		return net_nl_err(err, r, "netlink socket");
	return 0;
}

int net_open(const struct net_config *cfg, struct net **ret, struct berth_err *err)
{
	int r = check_config(cfg, err);
	if (r < 0)
		return r;
	_cleanup_(net_closep) struct net *net = calloc(1, sizeof(*net));
	if (!net)
		return berth_errf(err, ENOMEM, "network config: out of memory");
	net->netns_dirfd = net->ipam_dirfd = -1;
	snprintf(net->bridge, sizeof(net->bridge), "%s", cfg->bridge);
	snprintf(net->nft_table, sizeof(net->nft_table), "%s", cfg->nft_table);
	net->nat = cfg->nat;
	net->resolv_conf = strdup(cfg->host_resolv_conf);
	net->fallback_resolv_conf = strdup(cfg->fallback_resolv_conf);
	if (!net->resolv_conf || !net->fallback_resolv_conf)
		return berth_errf(err, ENOMEM, "network config: out of memory");
	if ((r = parse_subnet(net, cfg->subnet, err)) < 0 ||
	    (r = parse_blocked(net, cfg->blocked ? cfg->blocked : "", err)) < 0 ||
	    (r = parse_endpoint(net, cfg->task_endpoint, err)) < 0 ||
	    (r = open_dirs(net, cfg, err)) < 0 || (r = open_netlink(net, err)) < 0)
		return r;
	*ret = TAKE_PTR(net);
	return 0;
}

void net_close(struct net *net)
{
	if (!net)
		return;
	if (net->nl)
		nl_socket_free(net->nl);
	closep(&net->netns_dirfd);
	closep(&net->ipam_dirfd);
	free(net->run_dir);
	free(net->netns_dir);
	free(net->ipam_path);
	free(net->resolv_conf);
	free(net->fallback_resolv_conf);
	free(net);
}

/* "tcp:49153:80": shared by berth-netpolicy and the shim's plan. */
int net_publish_parse(const char *s, struct net_publish *ret)
{
	char proto[4], tail;
	unsigned long h, c;
	if (!s || sscanf(s, "%3[a-z]:%lu:%lu%c", proto, &h, &c, &tail) != 3 || h < 1 || h > 65535 ||
	    c < 1 || c > 65535 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789:") != strlen(s))
		return -EINVAL;
	if (strcmp(proto, "tcp") == 0)
		ret->proto = IPPROTO_TCP;
	else if (strcmp(proto, "udp") == 0)
		ret->proto = IPPROTO_UDP;
	else
		return -EINVAL;
	ret->host_port = (uint16_t)h;
	ret->container_port = (uint16_t)c;
	return 0;
}

#define PORT_RANGE "/proc/sys/net/ipv4/ip_local_port_range"
#define RESERVED_PORTS "/proc/sys/net/ipv4/ip_local_reserved_ports"

/* Whether PORT is in LIST, the kernel's "a,b-c,…" form. */
static bool port_listed(const char *list, int port)
{
	for (const char *p = list; *p;) {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;
		if (end == p)
			break;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (port >= lo && port <= hi)
			return true;
		p = *end == ',' ? end + 1 : end;
		if (*end != ',')
			break;
	}
	return false;
}

int net_reserve_local_port(int port, bool *ret_reserved, struct berth_err *err)
{
	*ret_reserved = false;
	char range[64] = "", list[4096] = "";
	int lo, hi;
	_cleanup_close_ int rfd = open(PORT_RANGE, O_RDONLY | O_CLOEXEC);
	ssize_t n = rfd < 0 ? -1 : pread(rfd, range, sizeof(range) - 1, 0);
	if (n < 0)
		return berth_errnof(err, errno, "read %s", PORT_RANGE);
	if (port <= 0 || sscanf(range, "%d %d", &lo, &hi) != 2 || port < lo || port > hi)
		return 0;
	_cleanup_close_ int fd = open(RESERVED_PORTS, O_RDWR | O_CLOEXEC);
	n = fd < 0 ? -1 : pread(fd, list, sizeof(list) - 1, 0);
	if (n < 0)
		return berth_errnof(err, errno, "read %s", RESERVED_PORTS);
	list[strcspn(list, "\n")] = '\0';
	if (port_listed(list, port))
		return 0;
	char want[sizeof(list) + 16];
	int len = snprintf(want, sizeof(want), "%s%s%d\n", list, *list ? "," : "", port);
	if (pwrite(fd, want, (size_t)len, 0) != len)
		return berth_errnof(err, errno, "write %s: reserve port %d", RESERVED_PORTS, port);
	*ret_reserved = true;
	return 0;
}
