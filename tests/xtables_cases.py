"""The iptables cases kslab.xtables and the real kernel must agree on (used by
tests/test_xtables.py on the model and tests/test_kernel_roundtrip.py in a kernel).

Every expected string below was printed by the real ``iptables-save`` v1.8.9 (nf_tables and
legacy backends) in a scratch network namespace, not written from memory:

- PRINT_CASES: the rule as given (after ``-A CHAIN``) and as iptables-save prints it;
- KERNEL_REFUSES: rules that iptables or the kernel refuse; kslab raises ValueError;
- REFUSED_TEXTS: restore texts that fail as a whole (chains, -X, hooks);
- STATE_CASES: restore texts and the tables they leave;
- VERBATIM_CASES: iptables-save lines with extensions kslab does not model, read with
  strict=False and printed back unchanged;
- UNSUPPORTED: rules kslab refuses to model, naming the rule.
"""

from __future__ import annotations

# (table, rule arguments as kube-proxy or a user writes them, as iptables-save prints them)
PRINT_CASES: list[tuple[str, str, str]] = [
    # --- kube-proxy's own rules (reference/kube-proxy.md §6)
    ("filter",
     '-m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT',
     '-d 172.30.0.46/32 -p tcp -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable'),
    ("filter",
     '-m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP',
     '-p tcp -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 3001 -j DROP'),
    ("filter",
     '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
     '! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP'),
    ("filter",
     "-m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP",
     "-m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP"),
    ("filter",
     '-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT',
     '-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT'),
    ("filter",
     '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
     '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'),
    ("nat", "-j MARK --or-mark 0x00004000", "-j MARK --set-xmark 0x4000/0x4000"),
    ("nat", "-m mark ! --mark 0x00004000/0x00004000 -j RETURN", "-m mark ! --mark 0x4000/0x4000 -j RETURN"),
    ("nat", "-j MARK --xor-mark 0x00004000", "-j MARK --set-xmark 0x4000/0x0"),
    ("nat",
     '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
     '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully'),
    ("nat",
     "-m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KSLAB-TARGET",
     '-d 127.0.0.0/8 -p tcp -m comment --comment "ns2/svc2:p80" -m tcp --dport 3001 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KSLAB-TARGET'),
    ("nat",
     "-m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80",
     '-p tcp -m comment --comment "ns5/svc5:p80" -m recent --set --name KUBE-SEP-I77PXRDZVX7PMWMN --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.180.0.3:80'),
    ("nat",
     '-m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KSLAB-TARGET',
     '-m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-I77PXRDZVX7PMWMN --mask 255.255.255.255 --rsource -j KSLAB-TARGET'),
    ("nat",
     '-m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KSLAB-TARGET',
     '! -s 10.0.0.0/8 -d 172.30.0.44/32 -p tcp -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp --dport 80 -j KSLAB-TARGET'),
    ("nat",
     '-m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"',
     '-m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"'),
    ("nat",
     '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KSLAB-TARGET',
     '! -d 127.0.0.0/8 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KSLAB-TARGET'),
    ("nat",
     '-m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KSLAB-TARGET',
     '-s 10.0.0.0/8 -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -j KSLAB-TARGET'),
    # --- probabilities (§4): 10 decimals in, 11 decimals of the 2^-31-rounded value out
    ("nat", "-m statistic --mode random --probability 0.5000000000 -j KSLAB-TARGET", "-m statistic --mode random --probability 0.50000000000 -j KSLAB-TARGET"),
    ("nat", "-m statistic --mode random --probability 0.3333333333 -j KSLAB-TARGET", "-m statistic --mode random --probability 0.33333333349 -j KSLAB-TARGET"),
    ("nat", "-m statistic --mode random --probability 0.2000000000 -j KSLAB-TARGET", "-m statistic --mode random --probability 0.20000000019 -j KSLAB-TARGET"),
    ("nat", "-m statistic --mode random --probability 0.1666666667 -j KSLAB-TARGET", "-m statistic --mode random --probability 0.16666666651 -j KSLAB-TARGET"),
    ("nat", "-m statistic --mode random --probability 0.1428571429 -j KSLAB-TARGET", "-m statistic --mode random --probability 0.14285714272 -j KSLAB-TARGET"),
    ("nat", "-m statistic --mode random --probability 0.1111111111 -j KSLAB-TARGET", "-m statistic --mode random --probability 0.11111111101 -j KSLAB-TARGET"),
    ("nat", "-m statistic --mode random --probability 0.1000000000 -j KSLAB-TARGET", "-m statistic --mode random --probability 0.10000000009 -j KSLAB-TARGET"),
    ("nat", "-m statistic --mode random --probability 0.0000099999 -j KSLAB-TARGET", "-m statistic --mode random --probability 0.00001000008 -j KSLAB-TARGET"),
    ("filter", "-m statistic --mode random --probability 1 -j ACCEPT", "-m statistic --mode random --probability 1.00000000000 -j ACCEPT"),
    ("filter", "-m statistic --mode random --probability 0 -j ACCEPT", "-m statistic --mode random --probability 0.00000000000 -j ACCEPT"),
    ("filter", "-m statistic --mode random ! --probability 0.5 -j ACCEPT", "-m statistic --mode random ! --probability 0.50000000000 -j ACCEPT"),
    ("filter", "-m statistic --probability 0.5 --mode random -j ACCEPT", "-m statistic --mode random --probability 0.50000000000 -j ACCEPT"),
    ("filter", "-m statistic --mode nth ! --every 3 --packet 2 -j ACCEPT", "-m statistic --mode nth ! --every 3 --packet 2 -j ACCEPT"),
    # --- addresses, interfaces, protocols: fixed field order, /32, network address
    ("filter", "-i eth0 -o eth1 -s 10.0.0.1 -d 10.0.0.0/8 -p tcp -j ACCEPT", "-s 10.0.0.1/32 -d 10.0.0.0/8 -i eth0 -o eth1 -p tcp -j ACCEPT"),
    ("filter", "! -d 10.0.0.1 -p udp -j ACCEPT", "! -d 10.0.0.1/32 -p udp -j ACCEPT"),
    ("filter", "-s 1.2.3.4 -m comment --comment x -d 5.6.7.8 -j ACCEPT", "-s 1.2.3.4/32 -d 5.6.7.8/32 -m comment --comment x -j ACCEPT"),
    ("filter", "-s 10.1.2.3/8 -j ACCEPT", "-s 10.0.0.0/8 -j ACCEPT"),
    ("filter", "-s 10.0.0.0/255.0.0.0 -j ACCEPT", "-s 10.0.0.0/8 -j ACCEPT"),
    ("filter", "-s 10.0.0.0/255.0.255.0 -j ACCEPT", "-s 10.0.0.0/255.0.255.0 -j ACCEPT"),
    ("filter", "-s 10.0.0.0/010 -j ACCEPT", "-s 10.0.0.0/8 -j ACCEPT"),
    ("filter", "-s 0.0.0.0/0 -j ACCEPT", "-j ACCEPT"),
    ("filter", "-s 1.2.3.4/0 -j ACCEPT", "-j ACCEPT"),
    ("filter", "-s 10.0.0.1/32 -j ACCEPT", "-s 10.0.0.1/32 -j ACCEPT"),
    ("filter", "! -i eth+ ! -o lo -j ACCEPT", "! -i eth+ ! -o lo -j ACCEPT"),
    ("filter", "-p 6 -j ACCEPT", "-p tcp -j ACCEPT"),
    ("filter", "-p 17 -j ACCEPT", "-p udp -j ACCEPT"),
    ("filter", "-p 132 -j ACCEPT", "-p sctp -j ACCEPT"),
    ("filter", "-p TCP -j ACCEPT", "-p tcp -j ACCEPT"),
    ("filter", "-p icmp -j ACCEPT", "-p icmp -j ACCEPT"),
    ("filter", "-p all -j ACCEPT", "-j ACCEPT"),
    ("filter", "! -p tcp -j ACCEPT", "! -p tcp -j ACCEPT"),
    # --- tcp/udp/sctp: implicit load by -p, option binding, port forms
    ("filter", "-p tcp --dport 80 -j ACCEPT", "-p tcp -m tcp --dport 80 -j ACCEPT"),
    ("filter", "-p tcp -m comment --comment x --dport 80 -j ACCEPT", "-p tcp -m comment --comment x -m tcp --dport 80 -j ACCEPT"),
    ("filter", "-p udp --dport 80 -m comment --comment y -j ACCEPT", "-p udp -m udp --dport 80 -m comment --comment y -j ACCEPT"),
    ("filter", "-p sctp --dport 80 -j ACCEPT", "-p sctp -m sctp --dport 80 -j ACCEPT"),
    ("filter", "-p tcp -m tcp --sport 5 -m comment --comment x --dport 6 -j ACCEPT", "-p tcp -m tcp --sport 5 --dport 6 -m comment --comment x -j ACCEPT"),
    ("filter", "-m tcp -p tcp -j ACCEPT", "-p tcp -m tcp -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport 80:80 -j ACCEPT", "-p tcp -m tcp --dport 80 -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport :80 -j ACCEPT", "-p tcp -m tcp --dport 0:80 -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport 1: -j ACCEPT", "-p tcp -m tcp --dport 1:65535 -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport 0:65535 -j ACCEPT", "-p tcp -m tcp -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport 0 -j ACCEPT", "-p tcp -m tcp --dport 0 -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport 0x50 -j ACCEPT", "-p tcp -m tcp --dport 80 -j ACCEPT"),
    ("filter", "-p tcp -m tcp ! --dport 80 --sport 1000:2000 -j ACCEPT", "-p tcp -m tcp --sport 1000:2000 ! --dport 80 -j ACCEPT"),
    ("filter", "-p tcp -m tcp --destination-port 80 --source-port 5 -j ACCEPT", "-p tcp -m tcp --sport 5 --dport 80 -j ACCEPT"),
    ("filter", "-p udp -m udp --dport 0:65535 -j ACCEPT", "-p udp -m udp -j ACCEPT"),
    ("filter", "-m udp -p udp --dport 53 -j ACCEPT", "-p udp -m udp --dport 53 -j ACCEPT"),
    ("filter", "-p sctp -m sctp --dport 0:65535 -j ACCEPT", "-p sctp -m sctp --dport 0:65535 -j ACCEPT"),
    ("filter", "-p sctp -m sctp --dport 80:80 ! --sport 7 -j ACCEPT", "-p sctp -m sctp ! --sport 7 --dport 80 -j ACCEPT"),
    # --- comments: xtables_save_string quoting and iptables-restore's tokeniser
    ("filter", '-m comment --comment "a\\"b\'c\\\\d" -m udp -p udp --dport 53 -j ACCEPT', '-p udp -m comment --comment "a\\"b\\\'c\\\\d" -m udp --dport 53 -j ACCEPT'),
    ("filter", '-m comment --comment "x" -j ACCEPT', "-m comment --comment x -j ACCEPT"),
    ("filter", "-m comment --comment abc_D-9 -j ACCEPT", "-m comment --comment abc_D-9 -j ACCEPT"),
    ("filter", '-m comment --comment "" -j ACCEPT', '-m comment --comment "" -j ACCEPT'),
    ("filter", "-m comment --comment ns1/svc1:p80 -j ACCEPT", '-m comment --comment "ns1/svc1:p80" -j ACCEPT'),
    ("filter", "-m comment --comment it's -j ACCEPT", '-m comment --comment "it\\\'s" -j ACCEPT'),
    ("filter", "-m comment --comment a\\b -j ACCEPT", '-m comment --comment "a\\\\b" -j ACCEPT'),
    ("filter", '-m comment --comment "a\\b" -j ACCEPT', "-m comment --comment ab -j ACCEPT"),
    ("filter", '-m comment --comment "tab\tx" -j ACCEPT', '-m comment --comment "tab\tx" -j ACCEPT'),
    ("filter", '-m comment --comment "é" -j ACCEPT', '-m comment --comment "é" -j ACCEPT'),
    ("filter", '-m comment --comment "$x" -j ACCEPT', '-m comment --comment "$x" -j ACCEPT'),
    ("filter", "-m comment --comment a -m comment --comment b -j ACCEPT", "-m comment --comment a -m comment --comment b -j ACCEPT"),
    ("filter", '-m comment --comment "a b" -m tcp -p tcp -m comment --comment c -j ACCEPT', '-p tcp -m comment --comment "a b" -m tcp -m comment --comment c -j ACCEPT'),
    ("filter", "   -j   ACCEPT   ", "-j ACCEPT"),
    ("filter", "-m comment --comment " + "y" * 255 + " -j ACCEPT", "-m comment --comment " + "y" * 255 + " -j ACCEPT"),
    ("filter", "-m comment --comment " + "y" * 256 + " -j ACCEPT", "-m comment --comment " + "y" * 255 + " -j ACCEPT"),
    # --- mark, conntrack, addrtype
    ("filter", "-m mark --mark 16384 -j ACCEPT", "-m mark --mark 0x4000 -j ACCEPT"),
    ("filter", "-m mark --mark 0x4000/0xffffffff -j ACCEPT", "-m mark --mark 0x4000 -j ACCEPT"),
    ("filter", "-m mark ! --mark 0x00004000 -j ACCEPT", "-m mark ! --mark 0x4000 -j ACCEPT"),
    ("filter", "-m mark --mark 0x0/0x0 -j ACCEPT", "-m mark --mark 0x0/0x0 -j ACCEPT"),
    ("filter", "-m mark --mark 010 -j ACCEPT", "-m mark --mark 0x8 -j ACCEPT"),
    ("filter", "-m mark --mark 0x4001/0x4000 -j ACCEPT", "-m mark --mark 0x4001/0x4000 -j ACCEPT"),
    ("filter",
     "-m conntrack --ctstate ESTABLISHED,RELATED,NEW,INVALID,DNAT,SNAT,UNTRACKED -j ACCEPT",
     "-m conntrack --ctstate INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED,SNAT,DNAT -j ACCEPT"),
    ("filter", "-m conntrack --ctstate new -j ACCEPT", "-m conntrack --ctstate NEW -j ACCEPT"),
    ("filter", "-m conntrack --ctstate NEW,NEW -j ACCEPT", "-m conntrack --ctstate NEW -j ACCEPT"),
    ("filter", "-m addrtype --dst-type local -j ACCEPT", "-m addrtype --dst-type LOCAL -j ACCEPT"),
    ("filter",
     "-m addrtype ! --src-type LOCAL,UNICAST ! --dst-type BROADCAST --limit-iface-in -j ACCEPT",
     "-m addrtype ! --src-type UNICAST,LOCAL ! --dst-type BROADCAST --limit-iface-in -j ACCEPT"),
    ("filter", "-m addrtype --dst-type LOCAL --src-type LOCAL -j ACCEPT", "-m addrtype --src-type LOCAL --dst-type LOCAL -j ACCEPT"),
    # --- recent
    ("filter", "-m recent --name KUBE-SEP-X --set -j ACCEPT", "-m recent --set --name KUBE-SEP-X --mask 255.255.255.255 --rsource -j ACCEPT"),
    ("filter", "-m recent --set -j ACCEPT", "-m recent --set --name DEFAULT --mask 255.255.255.255 --rsource -j ACCEPT"),
    ("filter", "-m recent --name X --update --seconds 5 --hitcount 2 --rdest -j ACCEPT", "-m recent --update --seconds 5 --hitcount 2 --name X --mask 255.255.255.255 --rdest -j ACCEPT"),
    ("filter", "-m recent --name X --remove --mask 255.255.0.0 -j ACCEPT", "-m recent --remove --name X --mask 255.255.0.0 --rsource -j ACCEPT"),
    ("filter", "-m recent ! --rcheck --name X -j ACCEPT", "-m recent ! --rcheck --name X --mask 255.255.255.255 --rsource -j ACCEPT"),
    ("filter", "-m recent --name X --update --rttl -j ACCEPT", "-m recent --update --rttl --name X --mask 255.255.255.255 --rsource -j ACCEPT"),
    # --- targets
    ("filter", "-j REJECT", "-j REJECT --reject-with icmp-port-unreachable"),
    ("filter", "-j REJECT --reject-with port-unreach", "-j REJECT --reject-with icmp-port-unreachable"),
    ("filter", "-j REJECT --reject-with icmp-host-prohibited", "-j REJECT --reject-with icmp-host-prohibited"),
    ("filter", "-j REJECT --reject-with ICMP-HOST-PROHIBITED", "-j REJECT --reject-with icmp-host-prohibited"),
    ("filter", "-j REJECT --reject-with net-prohib", "-j REJECT --reject-with icmp-net-prohibited"),
    ("filter", "-j REJECT --reject-with icmp-net-unreachable", "-j REJECT --reject-with icmp-net-unreachable"),
    ("filter", "-j REJECT --reject-with icmp-admin-prohibited", "-j REJECT --reject-with icmp-admin-prohibited"),
    ("filter", "-p tcp -j REJECT --reject-with tcp-reset", "-p tcp -j REJECT --reject-with tcp-reset"),
    ("filter", "-j DROP", "-j DROP"),
    ("filter", "-j RETURN", "-j RETURN"),
    ("filter", "-j KSLAB-TARGET", "-j KSLAB-TARGET"),
    ("filter", "-g KSLAB-TARGET", "-g KSLAB-TARGET"),
    ("filter", "-m comment --comment x", "-m comment --comment x"),
    ("filter", "-m mark --mark 0x1 -j MARK --set-mark 2", "-m mark --mark 0x1 -j MARK --set-xmark 0x2/0xffffffff"),
    ("nat", "-p tcp -j DNAT --to-destination 10.180.0.1:80", "-p tcp -j DNAT --to-destination 10.180.0.1:80"),
    ("nat", "-j DNAT --to-destination 10.180.0.1", "-j DNAT --to-destination 10.180.0.1"),
    ("nat", "-p tcp -j DNAT --to-destination 10.180.0.1:80-81", "-p tcp -j DNAT --to-destination 10.180.0.1:80-81"),
    ("nat", "-p tcp -j DNAT --to-destination 10.180.0.1:80-80", "-p tcp -j DNAT --to-destination 10.180.0.1:80"),
    ("nat", "-j DNAT --to-destination 10.180.0.1-10.180.0.3", "-j DNAT --to-destination 10.180.0.1-10.180.0.3"),
    ("nat", "-j DNAT --to-destination 10.180.0.1-10.180.0.1", "-j DNAT --to-destination 10.180.0.1"),
    ("nat", "-p udp -j DNAT --to-destination 10.180.0.1:53 --random --persistent", "-p udp -j DNAT --to-destination 10.180.0.1:53 --random --persistent"),
    ("nat", "-p tcp -j DNAT --to-destination 1.2.3.4:5 --persistent --random", "-p tcp -j DNAT --to-destination 1.2.3.4:5 --random --persistent"),
    ("nat", "-p tcp -j SNAT --to-source 172.18.0.2:1000", "-p tcp -j SNAT --to-source 172.18.0.2:1000"),
    ("nat", "-j SNAT --to-source 172.18.0.2", "-j SNAT --to-source 172.18.0.2"),
    ("nat", "-p tcp -j SNAT --to-source 1.2.3.4:5 --persistent --random-fully --random", "-p tcp -j SNAT --to-source 1.2.3.4:5 --random --random-fully --persistent"),
    ("nat", "-j MASQUERADE", "-j MASQUERADE"),
    ("nat", "-j MASQUERADE --random", "-j MASQUERADE --random"),
    ("nat", "-j MASQUERADE --random-fully --random", "-j MASQUERADE --random --random-fully"),
    ("nat", "-p tcp -j MASQUERADE --to-ports 1000-2000", "-p tcp -j MASQUERADE --to-ports 1000-2000"),
    ("nat", "-j MARK --set-mark 0x1", "-j MARK --set-xmark 0x1/0xffffffff"),
    ("nat", "-j MARK --set-mark 0x1/0xff", "-j MARK --set-xmark 0x1/0xff"),
    ("nat", "-j MARK --set-xmark 0x1", "-j MARK --set-xmark 0x1/0xffffffff"),
    ("nat", "-j MARK --set-xmark 0x1/0x3", "-j MARK --set-xmark 0x1/0x3"),
    ("nat", "-j MARK --and-mark 0xff", "-j MARK --set-xmark 0x0/0xffffff00"),
    ("nat", "-j MARK --or-mark 16384", "-j MARK --set-xmark 0x4000/0x4000"),
    ("nat", "-j MARK --or-mark 0x0", "-j MARK --set-xmark 0x0/0x0"),
    ("mangle", "-j MARK --set-mark 1", "-j MARK --set-xmark 0x1/0xffffffff"),
]  # fmt: skip

# (table, rule arguments) that iptables-restore refuses; kslab raises ValueError for them too
KERNEL_REFUSES: list[tuple[str, str]] = [
    ("filter", "-m tcp -j ACCEPT"),
    ("filter", "-p udp -m tcp --dport 80 -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport 90:80 -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport 080 -j ACCEPT"),
    ("filter", "-m tcp -p tcp --dport 80 --dport 81 -j ACCEPT"),
    ("filter", "-m statistic --mode random --probability 1.5 -j ACCEPT"),
    ("filter", "-m statistic --mode nth --every 3 -j ACCEPT"),
    ("filter", "-m statistic --mode nth --every 3 --packet 3 -j ACCEPT"),
    ("filter", "-m statistic --mode random --probability 0.5 --every 2 -j ACCEPT"),
    ("filter", "-m recent --name X --set --reap -j ACCEPT"),
    ("filter", "-m recent --set --rcheck -j ACCEPT"),
    ("filter", "-m recent --name X --set --rttl -j ACCEPT"),
    ("filter", "-m recent --name X --set --seconds 0 -j ACCEPT"),
    ("filter", "-m addrtype -j ACCEPT"),
    ("filter", "-m addrtype --dst-type LOCAL --limit-iface-in --limit-iface-out -j ACCEPT"),
    ("filter", "-m conntrack --ctstate NEW,BOGUS -j ACCEPT"),
    ("filter", "-m comment --comment y --comment z -j ACCEPT"),
    ("filter", "-m comment -j ACCEPT"),
    ("filter", "-m comment ! --comment x -j ACCEPT"),
    ("filter", "-m mark --mark 1 --mark 2 -j ACCEPT"),
    ("filter", "-m mark --mark 0x100000000 -j ACCEPT"),
    ("filter", "! -m comment --comment x -j ACCEPT"),
    ("filter", "! -j ACCEPT"),
    ("filter", "-j ACCEPT !"),
    ("filter", "-j ACCEPT -j DROP"),
    ("filter", "-s 1.2.3.4 -s 1.2.3.5 -j ACCEPT"),
    ("filter", "-p tcp -p udp -j ACCEPT"),
    ("filter", "-s 10.0.0.0/08 -j ACCEPT"),
    ("filter", "-s 10.0.0.0/33 -j ACCEPT"),
    ("filter", "-i eth0123456789012 -j ACCEPT"),
    ("filter", '-m comment --comment "a"b -j ACCEPT'),
    ("filter", "-m comment --comment 'a b' -j ACCEPT"),
    ("filter", "-j MARK --set-mark 1 --or-mark 2"),
    ("filter", "-j REJECT --reject-with tcp-reset"),
    ("filter", "-j REJECT --reject-with icmp6-port-unreachable"),
    ("filter", "-j DNAT --to-destination 1.2.3.4"),
    ("filter", "-j MASQUERADE"),
    ("filter", "-j KSLAB-NO-SUCH-CHAIN"),
    ("filter", "-j " + "A" * 29),
    ("mangle", "-j REJECT"),
    ("nat", "-j REJECT"),
    ("nat", "-j DNAT --to-destination 10.180.0.1:80"),
    ("nat", "-j DNAT --to-destination 10.180.0.01"),
    ("nat", "-j DNAT --to-destination 1.2.3.4:"),
    ("nat", "-j DNAT"),
    ("nat", "-p tcp -j DNAT --to-destination 1.2.3.4:5 --random-fully"),
    ("nat", "-p tcp -j DNAT --to-destination 1.2.3.4:80 --to-destination 1.2.3.5:80"),
]

# Whole restore texts that iptables-restore refuses (applied to a clean namespace)
REFUSED_TEXTS: list[tuple[str, str]] = [
    ("delete-missing-chain", "*filter\n-X KSLAB-NOPE\nCOMMIT\n"),
    ("delete-builtin-chain", "*filter\n-X INPUT\nCOMMIT\n"),
    ("delete-referenced-chain", "*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-X B\nCOMMIT\n"),
    ("delete-nonempty-chain", "*filter\n:A - [0:0]\n-A A -j ACCEPT\n-X A\nCOMMIT\n"),
    ("use-after-delete", "*filter\n:A - [0:0]\n:Q - [0:0]\n-X Q\n-A A -j Q\nCOMMIT\n"),
    ("undeclared-chain", "*filter\n-A KSLAB-NOPE -j ACCEPT\nCOMMIT\n"),
    ("chain-name-29", "*nat\n:" + "A" * 29 + " - [0:0]\nCOMMIT\n"),
    ("masquerade-in-prerouting", "*nat\n-A PREROUTING -j MASQUERADE\nCOMMIT\n"),
    ("dnat-in-postrouting", "*nat\n-A POSTROUTING -j DNAT --to-destination 1.2.3.4\nCOMMIT\n"),
    ("snat-in-output", "*nat\n-A OUTPUT -j SNAT --to-source 1.2.3.4\nCOMMIT\n"),
    ("masquerade-reached-from-prerouting", "*nat\n:QQ - [0:0]\n-A QQ -j MASQUERADE\n-A PREROUTING -j QQ\nCOMMIT\n"),
    ("jump-to-builtin", "*filter\n:A - [0:0]\n-A A -j INPUT\nCOMMIT\n"),
    ("builtin-policy-return", "*filter\n:INPUT RETURN [0:0]\nCOMMIT\n"),  # "Bad policy name" (both backends)
    ("builtin-policy-lower-case", "*filter\n:INPUT accept [0:0]\nCOMMIT\n"),
]

# Whole restore texts that load: (id, text, iptables-save output). Confirmed in the kernel.
STATE_CASES: list[tuple[str, str, str]] = [
    (
        "flush-delete-builtin-policy",
        "*filter\n:B - [0:0]\n:b - [0:0]\n:KUBE-X - [0:0]\n:KUBE_X - [0:0]\n:KUBE-x - [0:0]\n"
        ":KUBE-SERVICES - [0:0]\n:KUBE-SEP-Z - [0:0]\n:A1 - [0:0]\n:A-1 - [0:0]\n:Z - [0:0]\n"
        ":OLD - [0:0]\n-A Z -j ACCEPT\n-A b -j Z\n-A OLD -j DROP\n:OLD - [0:0]\n-X OLD\n"
        ":A1 - [0:0]\n-A A1 -j DROP\n:A1 - [0:0]\n-A A1 -j RETURN\n"
        ":INPUT DROP [5:6]\n-A INPUT -j B\n[3:4] -A B -j ACCEPT\nCOMMIT\n",
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":A-1 - [0:0]\n:A1 - [0:0]\n:B - [0:0]\n:KUBE-SEP-Z - [0:0]\n:KUBE-SERVICES - [0:0]\n"
        ":KUBE-X - [0:0]\n:KUBE-x - [0:0]\n:KUBE_X - [0:0]\n:Z - [0:0]\n:b - [0:0]\n"
        "-A INPUT -j B\n-A A1 -j RETURN\n-A B -j ACCEPT\n-A Z -j ACCEPT\n-A b -j Z\nCOMMIT\n",
    ),
    (
        "table-created-by-touch",
        "*nat\n:X - [0:0]\n-X X\nCOMMIT\n*mangle\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
    ),
    (
        "raw-table-order",
        "*nat\n:N - [0:0]\nCOMMIT\n*raw\n:R - [0:0]\nCOMMIT\n*filter\n:F - [0:0]\nCOMMIT\n*mangle\n:M - [0:0]\nCOMMIT\n",
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n:M - [0:0]\nCOMMIT\n"
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:R - [0:0]\nCOMMIT\n"
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:F - [0:0]\nCOMMIT\n"
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        ":N - [0:0]\nCOMMIT\n",
    ),
    (
        # "-" as a built-in chain's policy keeps the policy it has (ACCEPT in a new table), on
        # both backends; iptables-save prints that policy. A "-" line alone creates the table.
        # (Without "[p:b]", iptables-nft-restore --counters refuses any built-in chain line.)
        "builtin-policy-dash",
        "*filter\n:INPUT - [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT - [7:9]\n:FOO - [0:0]\n-A INPUT -j FOO\nCOMMIT\n"
        "*nat\n:PREROUTING - [0:0]\nCOMMIT\n",
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:FOO - [0:0]\n-A INPUT -j FOO\nCOMMIT\n"
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
    ),
    (
        # a later section's "-" keeps the DROP an earlier one set, and the chain's rules
        "builtin-policy-dash-keeps-current",
        "*filter\n:INPUT DROP [0:0]\n:A - [0:0]\n-A INPUT -j A\nCOMMIT\n*filter\n:INPUT - [0:0]\n:FORWARD - [0:0]\nCOMMIT\n",
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n-A INPUT -j A\nCOMMIT\n",
    ),
]

# iptables-save lines (after "-A CHAIN") with extensions kslab does not model: strict=False keeps
# them verbatim. Each is what the kernel printed for itself.
VERBATIM_CASES: list[tuple[str, str]] = [
    ("filter", "-p tcp -m multiport --dports 80,443 -j ACCEPT"),
    ("filter", '-m limit --limit 5/min -j LOG --log-prefix "a b "'),
    ("filter", "-m state --state NEW,ESTABLISHED -j ACCEPT"),
    ("filter", "-p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"),
    ("filter", '-s 10.0.0.0/8 -m comment --comment "x y" -m conntrack --ctstatus ASSURED -j ACCEPT'),
    ("raw", "-p udp -m udp --dport 53 -j CT --notrack"),
]

# Rules the kernel accepts but kslab refuses to print (it would have to guess)
UNSUPPORTED: list[tuple[str, str]] = [
    ("filter", "-s localhost -j ACCEPT"),  # hostnames are resolved by DNS
    ("filter", "-d 10.0.0.1,10.0.0.2 -j ACCEPT"),  # iptables adds two rules
    ("filter", "-p 47 -j ACCEPT"),  # name from /etc/protocols
    ("filter", "-p tcp -m tcp --dport http -j ACCEPT"),  # name from /etc/services
    ("filter", "-p tcp -m tcp --dport 80 --tcp-flags SYN,ACK SYN -j ACCEPT"),  # option not modelled
    ("filter", "-m conntrack --ctstatus ASSURED -j ACCEPT"),
    ("filter", "-p tcp -m multiport --dports 80,443 -j ACCEPT"),
    ("filter", "-p tcp -m tcp -m tcp --dport 5 -j ACCEPT"),  # nft merges, legacy keeps two
    ("filter", "-p tcp --dport 80 -m tcp --sport 5 -j ACCEPT"),  # same
    ("filter", "! -p tcp -m tcp --dport 80 -j ACCEPT"),
    ("filter", "! -s 0.0.0.0/0 -j ACCEPT"),  # nft refuses it, legacy prints "! -s 0.0.0.0/0"
    ("filter", '-m comment --comment "' + "é" * 128 + '" -j ACCEPT'),  # cut inside a character
    ("nat", "-j SNAT --to 172.18.0.2"),  # getopt abbreviation of --to-source
]
