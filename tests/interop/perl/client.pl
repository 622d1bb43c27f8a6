#!/usr/bin/perl
# perl client.pl PORT MODE: prints one line per result.
use strict; use warnings;
use Gearman::Client;
$| = 1;
my ($port, $mode) = @ARGV;
my $c = Gearman::Client->new;
$c->job_servers("127.0.0.1:$port");
if ($mode eq 'do') {
    my $r = $c->do_task(reverse => "hello\0world", {timeout => 20});
    print defined $r ? "result " . $$r . "\n" : "undef\n";
} elsif ($mode eq 'fail') {
    my $failed = 0;
    my $r = $c->do_task(die => "x", {timeout => 20, on_fail => sub { $failed = 1 }});
    print defined $r ? "result\n" : "failed=$failed\n";
} elsif ($mode eq 'background') {
    my $h = $c->dispatch_background(reverse => "bg", {uniq => "perl-bg"});
    print defined $h ? "handle $h\n" : "undef\n";
} elsif ($mode eq 'taskset') {
    my $ts = $c->new_task_set;
    my @got;
    for my $word (qw(one two three)) {
        $ts->add_task(reverse => $word, {on_complete => sub { push @got, ${$_[0]} }});
    }
    $ts->wait(timeout => 20);
    print join(",", sort @got), "\n";
}
