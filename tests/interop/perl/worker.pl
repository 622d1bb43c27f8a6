#!/usr/bin/perl
# perl worker.pl PORT: registers "reverse" (reverses its argument) and "die" (always dies).
use strict; use warnings;
use Gearman::Worker;
$| = 1;
my $w = Gearman::Worker->new;
$w->job_servers("127.0.0.1:$ARGV[0]");
$w->register_function(reverse => sub { scalar reverse $_[0]->arg });
$w->register_function(die => sub { die "worker died\n" });
$w->work while 1;
