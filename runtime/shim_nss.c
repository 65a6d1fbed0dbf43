/* berth-shim is a static PIE (Makefile).  The libnl objects it needs also
 * carry libnl's name-lookup helpers (nl_addr_info, nl_addr_resolve,
 * nl_ip_proto2str, nl_str2ip_proto), and those reference glibc's NSS
 * functions, which in a static binary dlopen the host's NSS modules at run
 * time.  The shim never resolves a name (users come from the image's
 * /etc/passwd, addresses from the plan), so these definitions, which take
 * the place of libc.a's, fail: the task agent can never load a host
 * library. */
#include <netdb.h>
#include <stddef.h>

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	(void)node, (void)service, (void)hints, (void)res;
	return EAI_FAIL;
}

int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
		char *serv, socklen_t servlen, int flags)
{
	(void)sa, (void)salen, (void)host, (void)hostlen, (void)serv, (void)servlen,
		(void)flags;
	return EAI_FAIL;
}

struct protoent *getprotobyname(const char *name)
{
	(void)name;
	return NULL;
}

struct protoent *getprotobynumber(int proto)
{
	(void)proto;
	return NULL;
}
