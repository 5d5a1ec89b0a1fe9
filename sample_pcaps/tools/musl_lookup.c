/*
 * musl_lookup: resolve names with musl's getaddrinfo() and print the result.
 *
 * Built statically against musl (musl-gcc -static) so that the lookups use musl's stub
 * resolver: it reads /etc/resolv.conf, sends the A and AAAA queries from one socket to
 * every nameserver at once, and (in musl 1.2.3) never retries a truncated (TC=1) answer
 * over TCP.
 *
 * usage: musl_lookup [-4|-6] NAME...
 *   -4  ask for IPv4 only (one A query per nameserver)
 *   -6  ask for IPv6 only (one AAAA query per nameserver)
 * Exit status: 0 when every name resolved, 2 when any lookup failed.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static int lookup(const char *name, int family)
{
	struct addrinfo hints, *res, *ai;
	char text[INET6_ADDRSTRLEN];
	int n = 0, rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc != 0) {
		printf("%s: error %d (%s)\n", name, rc, gai_strerror(rc));
		return 1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		const void *addr;
		if (ai->ai_family == AF_INET)
			addr = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		else if (ai->ai_family == AF_INET6)
			addr = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(ai->ai_family, addr, text, sizeof text))
			printf("%s %s\n", name, text);
		n++;
	}
	freeaddrinfo(res);
	printf("%s: %d address%s\n", name, n, n == 1 ? "" : "es");
	return 0;
}

int main(int argc, char **argv)
{
	int family = AF_UNSPEC, failed = 0, i = 1;

	if (i < argc && strcmp(argv[i], "-4") == 0) {
		family = AF_INET;
		i++;
	} else if (i < argc && strcmp(argv[i], "-6") == 0) {
		family = AF_INET6;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [-4|-6] NAME...\n", argv[0]);
		return 64;
	}
	for (; i < argc; i++)
		failed |= lookup(argv[i], family);
	fflush(stdout);
	return failed ? 2 : 0;
}
